"""No models: this module exists so that Django sends this app its post_migrate signal."""
