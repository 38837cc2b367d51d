from catalog import views
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("", views.product_list, name="product-list"),
    path("api/products/", views.product_api, name="product-api"),
    path("api/summary/", views.summary_async, name="summary-async"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("fib/<int:n>/", views.fibonacci, name="fibonacci"),
    path("admin/", admin.site.urls),
]
