from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=200)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    price_cents = models.IntegerField()
    stock = models.IntegerField(default=0)

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name

    @property
    def price(self):
        return f"{self.price_cents / 100:.2f}"


CATEGORIES = ["books", "garden", "kitchen", "music", "tools"]


def seed(products=200):
    """Fills the catalog with CATEGORIES and `products` products, once;
    returns the number of products."""
    if Product.objects.exists():
        return Product.objects.count()
    cats = [Category.objects.create(name=name) for name in CATEGORIES]
    Product.objects.bulk_create(
        Product(name=f"item {i:04d}", category=cats[i % len(cats)],
                price_cents=100 + (i * 37) % 5000, stock=i % 13)
        for i in range(products)
    )
    return products
