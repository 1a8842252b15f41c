"""Test configuration: one fixture module per external system, as psycopg's tests do."""

pytest_plugins = [
    "tests.fix_pg",
    "tests.fix_spec",
    "tests.fix_aws",
    "tests.fix_k8s",
    "tests.fix_traffic",
    "tests.fix_browser",
]
