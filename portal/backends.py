"""A RollCall admin (role admin) holds every model permission in the Django admin, whether or not
their login is staff and whatever Django permissions it was given: the role decides, as everywhere
else (portal/permissions.py). Authenticates no one; it only answers permission questions."""

from __future__ import annotations

from django.contrib.auth.backends import BaseBackend

from portal.permissions import has_admin_model_permission


class RollCallAdminBackend(BaseBackend):
    def has_perm(self, user_obj, perm: str, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return has_admin_model_permission(user_obj)

    def has_module_perms(self, user_obj, app_label: str) -> bool:  # type: ignore[no-untyped-def]
        return has_admin_model_permission(user_obj)
