"""tuneyard: a self-hosted fine-tuning platform speaking the Emissary API."""
__version__ = "0.1.0"
