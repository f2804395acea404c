"""Designs flashsale is measured against, served the same way."""
