"""The MUCA load benchmark: see bench/README.md."""
