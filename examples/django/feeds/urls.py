"""URLs of the feeds app."""
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("imports/<str:task_id>.json", views.import_progress_json, name="import-progress-json"),
    path("imports/<str:task_id>/", views.import_progress, name="import-progress"),
]
