"""Pre-flight and service-validation checks."""
