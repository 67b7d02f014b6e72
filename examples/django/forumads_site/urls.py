"""URLs: the admin, celery-progress's progress view and the feeds app."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # celery-progress's own view: GET /celery-progress/<task_id>/ is Progress(AsyncResult(id)).get_info().
    path("celery-progress/", include("celery_progress.urls")),
    path("", include("feeds.urls")),
]
