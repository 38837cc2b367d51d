"""Views of the example shop: each one exercises a different part of Django
that shows up differently in a profile."""
import asyncio
import csv
import io

from asgiref.sync import sync_to_async
from django.db.models import Count, Sum
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from .models import Category, Product


def product_list(request):
    """Template rendering and ORM queries. Without ?fast, each row reads its
    category with one more query (the N+1 pattern a profile makes visible)."""
    products = Product.objects.all()[:50]
    if "fast" in request.GET:
        products = products.select_related("category")
    rows = [{"name": p.name, "category": p.category.name, "price": p.price}
            for p in products]
    return render(request, "catalog/list.html", {"rows": rows})


def product_api(request):
    """JSON built from the ORM."""
    category = request.GET.get("category")
    qs = Product.objects.select_related("category")
    if category:
        qs = qs.filter(category__name=category)
    data = [{"id": p.id, "name": p.name, "category": p.category.name,
             "price_cents": p.price_cents} for p in qs[:100]]
    return JsonResponse({"count": len(data), "products": data})


def _category_totals():
    return list(Category.objects.annotate(n=Count("products"), stock=Sum("products__stock"))
                .order_by("name").values("name", "n", "stock"))


def score(totals):
    """Pure Python work inside the async view, so its own functions show up."""
    return sum((t["n"] or 0) * (t["stock"] or 0) for t in totals)


async def summary_async(request):
    """An async view: ORM work in a thread (sync_to_async), awaited
    concurrently with a coroutine of its own."""

    async def tick():
        await asyncio.sleep(0.001)
        return "ok"

    totals, status = await asyncio.gather(sync_to_async(_category_totals)(), tick())
    return JsonResponse({"status": status, "score": score(totals), "categories": totals})


def _csv_rows():
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "name", "price_cents"])
    yield buf.getvalue()
    for p in Product.objects.order_by("id").iterator(chunk_size=50):
        buf.seek(0)
        buf.truncate()
        writer.writerow([p.id, p.name, p.price_cents])
        yield buf.getvalue()


def export_csv(request):
    """A streaming response: rows are read and written while the client
    consumes the body."""
    return StreamingHttpResponse(_csv_rows(), content_type="text/csv")


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fibonacci(request, n):
    """CPU-bound work with deep recursion."""
    if n > 27:
        raise Http404("n must be at most 27")
    return JsonResponse({"n": n, "fib": fib(n)})
