"""Who may do what in the Django admin, which stays the organisers' back office.

Platform admins keep Django's own permission checks (and ``User.has_perm``
grants them everything). Organisers and photographers get no Django
permissions at all: what they may open follows from their role and from the
events they are assigned to, so assigning someone to an event is the only
thing an admin has to do. Every staff admin page then narrows its queryset to
the rows the person may see, which also decides what an object URL answers:
a row outside the queryset looks exactly like a row that does not exist.
"""

from django.contrib import admin

from accounts.models import User, is_platform_admin  # noqa: F401 (the admins' one rule)


def has_role(user, roles) -> bool:
    return user.is_authenticated and user.is_active and getattr(user, "role", None) in roles


ORGANISER = (User.Role.ORGANISER,)
PHOTOGRAPHER = (User.Role.PHOTOGRAPHER,)
EVENT_STAFF = (User.Role.ORGANISER, User.Role.PHOTOGRAPHER)


class RoleScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin that organisers and photographers share with admins, each on their own rows.

    ``view_roles`` may list and open rows, ``change_roles`` may also edit and
    run actions that need "change", ``add_roles`` may add, ``delete_roles`` may
    delete. ``scope(request, queryset)`` narrows the rows for everyone but
    platform admins.
    """

    view_roles: tuple = ()
    change_roles: tuple = ()
    add_roles: tuple = ()
    delete_roles: tuple = ()

    def scope(self, request, queryset):
        raise NotImplementedError

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_platform_admin(request.user):
            return queryset
        return self.scope(request, queryset)

    def _allows(self, request, roles, obj=None) -> bool:
        if not has_role(request.user, roles):
            return False
        # Objects reach these checks from the scoped queryset, except on paths that
        # fetch them otherwise (inline formsets, popups): check the scope again.
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request):
        if is_platform_admin(request.user):
            return super().has_module_permission(request)
        return has_role(request.user, self.view_roles + self.change_roles)

    def has_view_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_view_permission(request, obj)
        return self._allows(request, self.view_roles + self.change_roles, obj)

    def has_change_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_change_permission(request, obj)
        return self._allows(request, self.change_roles, obj)

    def has_add_permission(self, request):
        if is_platform_admin(request.user):
            return super().has_add_permission(request)
        return has_role(request.user, self.add_roles)

    def has_delete_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_delete_permission(request, obj)
        return self._allows(request, self.delete_roles, obj)


class ParentScopedInline:
    """An inline that staff may edit exactly when they may change the parent object."""

    def _parent_allows(self, request, obj) -> bool:
        parent_admin = self.admin_site._registry[self.parent_model]
        return parent_admin.has_change_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_view_permission(request, obj)
        parent_admin = self.admin_site._registry[self.parent_model]
        return parent_admin.has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_change_permission(request, obj)
        return self._parent_allows(request, obj)

    def has_add_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_add_permission(request, obj)
        return self._parent_allows(request, obj)

    def has_delete_permission(self, request, obj=None):
        if is_platform_admin(request.user):
            return super().has_delete_permission(request, obj)
        return self._parent_allows(request, obj)
