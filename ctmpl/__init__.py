"""ctmpl: keep nginx and HAProxy configuration in step with a service catalog."""

__version__ = "0.1.0"
