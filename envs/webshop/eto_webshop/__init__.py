"""A WebShop environment of our own: WebShop's text pages, actions and reward over a product catalog.

    from eto_webshop import Catalog, WebShop, make_search
    catalog = Catalog.load("data/webshop")
    shop = WebShop(catalog, make_search(list(catalog.products.values())))
    print(shop.reset(0)); print(shop.step("search[green tea]").observation)

The catalog is WebShop's own data (online) or one generated offline by ``eto_webshop.generate``.
"""

from eto_webshop.catalog import Catalog, CatalogError, Goal, Product
from eto_webshop.engine import StepResult, WebShop
from eto_webshop.search import make_search

__all__ = ["Catalog", "CatalogError", "Goal", "Product", "StepResult", "WebShop", "make_search"]
