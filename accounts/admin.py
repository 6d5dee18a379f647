from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "is_superuser", "is_active")
    fieldsets = BaseUserAdmin.fieldsets + ((_("Role"), {"fields": ("role",)}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + ((_("Role"), {"fields": ("role",)}),)
    # Admin access follows the role (see User.save), so the flag is shown, not edited.
    readonly_fields = ("is_staff",)
