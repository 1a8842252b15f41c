"""Infrastructure-as-code helpers: run Terraform, record changes in an infrastructure git repo."""
