from django.core.management.base import BaseCommand

from catalog.models import seed


class Command(BaseCommand):
    help = "Fills the catalog with categories and products (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=200)

    def handle(self, *args, products, **options):
        n = seed(products)
        self.stdout.write(f"catalog has {n} products")
