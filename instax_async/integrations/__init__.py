"""Webhook receivers for web frameworks, over one framework-free core."""
