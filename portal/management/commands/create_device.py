"""``manage.py create_device NAME [--location TEXT]``: register a kiosk or edge device and print
its token once (only a hash is stored). ``--token-only`` prints just the token, for scripts."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portal.models import Device
from portal.services import device_create


class Command(BaseCommand):
    help = "Register a device (kiosk or Jetson edge client) and print its API token once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--location", default="")
        parser.add_argument("--token-only", action="store_true", help="print only the token")

    def handle(self, *args, name: str, location: str, token_only: bool, **options) -> None:
        if Device.objects.filter(name=name).exists():
            raise CommandError(f"a device named {name!r} exists already (delete it in the admin to issue a new token)")
        device, token = device_create(name=name, location=location)
        if token_only:
            self.stdout.write(token)
            return
        self.stdout.write(f"Device {device.name!r} (id {device.pk}) created. Its token, shown only now:\n\n  {token}\n\n"
                          "Give it to the edge client: ROLLCALL_EDGE_TOKEN, token_file, or --token.")
