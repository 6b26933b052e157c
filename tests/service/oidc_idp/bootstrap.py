"""Prepare the provider's database: migrate, a signing key, people and clients from JSON.

Run as ``python -m tests.service.oidc_idp.bootstrap SPEC.json`` with the site's settings; the
spec names ``people`` (username, password, email, first/last name) and ``clients`` (client_id,
client_secret, redirect_uris).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import django


def main(spec_path: str) -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from oidc_provider.models import Client, ResponseType

    call_command("migrate", interactive=False, verbosity=0)
    call_command("creatersakey")
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    people = get_user_model()
    for p in spec["people"]:
        people.objects.create_user(
            p["username"],
            p["email"],
            p["password"],
            first_name=p.get("first", ""),
            last_name=p.get("last", ""),
        )
    code = ResponseType.objects.get(value="code")
    for c in spec["clients"]:
        client = Client(
            name=c["client_id"],
            client_type="confidential",
            client_id=c["client_id"],
            client_secret=c["client_secret"],
            jwt_alg="RS256",
            require_consent=False,
            reuse_consent=True,
        )
        client.redirect_uris = c["redirect_uris"]
        client.save()
        client.response_types.add(code)


if __name__ == "__main__":
    main(sys.argv[1])
