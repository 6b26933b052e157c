"""A real OpenID Connect provider for the tests: django-oidc-provider in a small Django site.

The site (``settings``, ``urls``, ``claims``, the login template) is configured here and
started as a subprocess by ``tests.service.oidc_fixture``; nothing in it is gpupool code.
"""
