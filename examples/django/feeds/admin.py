"""Admin: adding a FeedSource here sends its import like any other save."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import FeedImport, FeedSource


class FeedImportInline(admin.TabularInline):
    model = FeedImport
    extra = 0
    can_delete = False
    fields = ("task_id", "state", "enqueued", "finished", "rows_ok", "rows_failed", "score_task_id")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FeedSource)
class FeedSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "url_or_path", "created", "progress")
    readonly_fields = ("created", "last_task_id", "enqueue_error")
    search_fields = ("name", "url_or_path")
    inlines = [FeedImportInline]

    @admin.display(description="last import")
    def progress(self, obj):
        if not obj.last_task_id:
            return obj.enqueue_error or "-"
        return format_html('<a href="{}">{}</a>', reverse("import-progress", args=[obj.last_task_id]), obj.last_task_id)


@admin.register(FeedImport)
class FeedImportAdmin(admin.ModelAdmin):
    list_display = ("task_id", "source", "state", "enqueued", "finished", "rows_ok", "rows_failed")
    list_filter = ("state",)
    readonly_fields = [f.name for f in FeedImport._meta.fields]

    def has_add_permission(self, request):
        return False
