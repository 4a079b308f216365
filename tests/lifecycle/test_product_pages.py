"""A product's page and image, from the storefront: Shopify product webhooks, WooCommerce order lines
and product webhooks, and the API's order lines. The review request links to and shows them."""

import datetime as dt
import json

import pytest

from lifecycle import clock
from lifecycle.models import Order, Product
from lifecycle.tenants import store_connect
from tests.factories import order_payload
from tests.lifecycle.webhook_support import (
    SHOPIFY_SECRET,
    WOO_SECRET,
    WOO_SITE,
    encode,
    php_json,
    raw,
    shopify_post,
    woo_post,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
BEANS = "8801234567890"  # a product of tests/lifecycle/payloads/shopify/order_paid.json


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def media(tenant) -> dict[str, tuple[str, str, str]]:
    return {p.external_id: (p.title, p.url, p.image_url) for p in Product.objects.for_tenant(tenant)}


def shopify_product(**overrides) -> dict:
    """A REST Product resource, as products/create and products/update post it."""
    return {"id": int(BEANS), "title": "House beans", "handle": "house-beans", "status": "active",
            "published_at": "2026-10-01T10:00:00+02:00", "vendor": "Acme", "product_type": "Coffee",
            "variants": [{"id": 4401, "product_id": int(BEANS), "sku": "BEANS-500", "price": "12.95"}],
            "image": {"id": 91, "product_id": int(BEANS), "position": 1,
                      "src": "https://cdn.shopify.com/s/files/1/0001/products/beans.jpg?v=1"},
            "images": [{"id": 92, "position": 2, "src": "https://cdn.shopify.com/s/files/1/0001/products/bag.jpg"},
                       {"id": 91, "position": 1, "src": "https://cdn.shopify.com/s/files/1/0001/products/beans.jpg?v=1"}],
            **overrides}


def test_a_shopify_product_webhook_fills_the_products_page_and_image(tenant, other_tenant):
    store_connect(tenant=tenant, platform="shopify", address="acme-coffee.myshopify.com", secret=SHOPIFY_SECRET)
    Product.objects.for_tenant(other_tenant).create(tenant=other_tenant, external_id=BEANS, title="Other store's")
    assert shopify_post(raw("shopify/order_paid.json"), topic="orders/paid", event_id="e1").status_code == 200
    # Order lines carry neither: the products exist, without page or image.
    assert media(tenant)[BEANS] == ("House beans - 500 g", "", "")

    response = shopify_post(encode(shopify_product()), topic="products/update", event_id="e2")

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "processed", "detail": f"product {BEANS} updated"}
    assert media(tenant)[BEANS] == ("House beans", "https://acme-coffee.myshopify.com/products/house-beans",
                                    "https://cdn.shopify.com/s/files/1/0001/products/beans.jpg?v=1")
    assert Product.objects.for_tenant(tenant).get(external_id=BEANS).sku == "BEANS-500"
    # Its type and tags stand for collections (a journey's condition: bought from a collection).
    shopify_post(encode(shopify_product(tags="organic, Gift ideas")), topic="products/update", event_id="e2b")
    assert Product.objects.for_tenant(tenant).get(external_id=BEANS).collections == ["Coffee", "Gift ideas", "organic"]
    # Another store's product with the same id is not touched.
    assert media(other_tenant)[BEANS] == ("Other store's", "", "")

    # Set back to draft: its page would be a 404, so the link goes; the image stays.
    shopify_post(encode(shopify_product(status="draft")), topic="products/update", event_id="e3")
    assert media(tenant)[BEANS] == ("House beans", "", "https://cdn.shopify.com/s/files/1/0001/products/beans.jpg?v=1")

    # A new product, with no featured image and a script where a URL should be: no image, no failure.
    response = shopify_post(encode(shopify_product(id=77, title="Grinder", handle="grinder", image=None, images=[
        {"id": 5, "position": 1, "src": "javascript:alert(1)"}])), topic="products/create", event_id="e4")
    assert response.json() == {"status": "processed", "detail": "product 77 created"}
    assert media(tenant)["77"] == ("Grinder", "https://acme-coffee.myshopify.com/products/grinder", "")


def test_woocommerce_order_lines_bring_images_and_a_link_and_product_webhooks_the_permalink(tenant):
    conn = store_connect(tenant=tenant, platform="woocommerce", address=WOO_SITE, secret=WOO_SECRET)

    assert woo_post(conn.public_id, raw("woocommerce/order_created.json"), topic="order.created").status_code == 200

    assert media(tenant) == {
        "31": ("Café crème blend – 1 kg", "https://shop.example.com/?post_type=product&p=31",
               "https://shop.example.com/wp-content/uploads/2026/10/creme.jpg"),
        "36": ("Paper filters (100)", "https://shop.example.com/?post_type=product&p=36",
               "https://shop.example.com/wp-content/uploads/2026/10/papers.jpg"),
    }

    product = {"id": 31, "name": "Café crème blend – 1 kg", "slug": "cafe-creme", "status": "publish",
               "permalink": "https://shop.example.com/product/cafe-creme/", "sku": "CREME-1KG",
               "images": [{"id": 44, "src": "https://shop.example.com/wp-content/uploads/2026/11/creme-new.jpg"}],
               "categories": [{"id": 9, "name": "Espresso", "slug": "espresso"}]}
    response = woo_post(conn.public_id, php_json(product), topic="product.updated", delivery_id="p-1")

    assert response.status_code == 200, response.content
    assert json.loads(response.content) == {"status": "processed", "detail": "product 31 updated"}
    assert media(tenant)["31"] == ("Café crème blend – 1 kg", "https://shop.example.com/product/cafe-creme/",
                                   "https://shop.example.com/wp-content/uploads/2026/11/creme-new.jpg")
    assert Product.objects.for_tenant(tenant).get(external_id="31").collections == ["Espresso", "espresso"]
    # A later order's line keeps the permalink (a product's page beats WordPress's link to it).
    again = json.loads(raw("woocommerce/order_created.json"))
    again.update(id=728, number="728")
    assert woo_post(conn.public_id, php_json(again), topic="order.created", delivery_id="o-2").status_code == 200
    assert media(tenant)["31"][1] == "https://shop.example.com/product/cafe-creme/"


def test_the_api_keeps_a_lines_product_page_and_image_on_the_product(api, tenant):
    line = {"product_external_id": "p-beans", "sku": "BEANS-1KG", "title": "House beans 1 kg", "quantity": 1,
            "unit_price": "24.95", "product_url": "https://shop.example.com/products/house-beans",
            "product_image_url": "https://cdn.example.com/beans.jpg"}
    assert api.post("/api/v1/orders", order_payload(external_id="A1", total="24.95", discount_total="0.00",
                                                    lines=[line])).status_code == 201
    assert media(tenant) == {"p-beans": ("House beans 1 kg", "https://shop.example.com/products/house-beans",
                                         "https://cdn.example.com/beans.jpg")}

    # A later order with a new image updates it; one without leaves both alone.
    newer = {**line, "product_image_url": "https://cdn.example.com/beans-v2.jpg"}
    newer.pop("product_url")
    assert api.post("/api/v1/orders", order_payload(external_id="A2", total="24.95", discount_total="0.00",
                                                    lines=[newer])).status_code == 201
    bare = {k: v for k, v in line.items() if not k.startswith("product_") or k == "product_external_id"}
    assert api.post("/api/v1/orders", order_payload(external_id="A3", total="24.95", discount_total="0.00",
                                                    lines=[bare])).status_code == 201
    assert media(tenant)["p-beans"][1:] == ("https://shop.example.com/products/house-beans",
                                            "https://cdn.example.com/beans-v2.jpg")


@pytest.mark.parametrize("field", ["product_url", "product_image_url"])
@pytest.mark.parametrize("value", ["javascript:alert(1)", "/products/beans", "ftp://shop.example.com/beans",
                                   'https://shop.example.com/"><script>', "https://" + "a" * 1000 + ".com"])
def test_the_api_refuses_a_product_url_that_is_not_a_web_address(api, tenant, field, value):
    line = {"product_external_id": "p-beans", "title": "House beans", "quantity": 1, "unit_price": "24.95",
            field: value}

    response = api.post("/api/v1/orders", order_payload(external_id="B1", total="24.95", discount_total="0.00",
                                                        lines=[line]))

    assert response.status_code == 400, response.content
    assert f"lines.0.{field}" in response.json()["fields"]
    assert not Order.objects.for_tenant(tenant).exists() and not Product.objects.for_tenant(tenant).exists()
