"""The word lists the offline catalog generator draws from.

Five departments, as in WebShop (beauty, electronics, fashion, food, home), each with product
types. A type names its search query and category path, the attributes a shopper may ask for,
the option dimensions a listing offers (colour, size, flavour, ...) and a price band. Every
phrase here was written for this project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class ProductType:
    category: str                                # department (WebShop's "category")
    noun: str                                    # what the product is, as a shopper says it
    path: Tuple[str, ...]                        # product_category, broadest first
    attributes: Tuple[str, ...]                  # properties a goal may ask for
    options: Dict[str, Tuple[str, ...]]          # option name -> values a listing may offer
    price: Tuple[float, float]                   # price band in dollars
    extras: Tuple[str, ...] = ()                 # words that only make titles read like listings

    @property
    def query(self) -> str:
        return self.noun


COLORS = ("black", "white", "grey", "navy blue", "red", "beige", "olive green", "pink", "brown", "light blue",
          "burgundy", "mustard yellow")
APPAREL_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large")
SHOE_SIZES = ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12")
PACKS = ("pack of 1", "pack of 2", "pack of 3", "pack of 6", "pack of 12")

BRANDS = {
    "beauty": ("Lumera", "Velvet Fern", "Aubrine", "Solace & Sage", "Miravo", "Petalon", "Dewbright", "Corabelle"),
    "electronics": ("Voltrek", "Soundara", "Arclink", "Nexiva", "Cobaltix", "Pulsewave", "Quanta Gear", "Hexon"),
    "fashion": ("Northpine", "Ravello", "Ember & Oak", "Tidewear", "Stridekin", "Maple Row", "Ostrava", "Kestrel"),
    "food": ("Harvest Hollow", "Golden Terrace", "Wild Orchard", "Sunmeadow", "Bramble Mill", "Copper Kettle",
             "Greenfold", "Little Acre"),
    "home": ("Oakhaven", "Linden Loft", "Casa Brio", "Hearthwell", "Nordlund", "Willow & Wren", "Stonebay", "Alder Home"),
}

PRODUCT_TYPES: Tuple[ProductType, ...] = (
    # ------------------------------------------------------------------ beauty
    ProductType("beauty", "shampoo", ("Beauty & Personal Care", "Hair Care", "Shampoo & Conditioner", "Shampoos"),
                ("sulfate free", "paraben free", "for dry hair", "natural ingredients", "cruelty free",
                 "color safe", "long lasting fragrance"),
                {"scent": ("lavender", "coconut", "tea tree", "argan oil", "unscented", "citrus"),
                 "size": ("8 fl oz", "12 fl oz", "16 fl oz", "33.8 fl oz")},
                (6.0, 32.0), ("Daily Care Formula", "Salon Quality", "Gentle Cleansing")),
    ProductType("beauty", "face moisturizer", ("Beauty & Personal Care", "Skin Care", "Face", "Moisturizers"),
                ("hyaluronic acid", "fragrance free", "for sensitive skin", "oil free", "non comedogenic",
                 "with spf 30", "vegan"),
                {"size": ("1.7 oz", "2.5 oz", "3.4 oz"), "formula": ("day cream", "night cream", "gel")},
                (9.0, 48.0), ("Hydrating", "Lightweight", "24 Hour")),
    ProductType("beauty", "lipstick", ("Beauty & Personal Care", "Makeup", "Lips", "Lipstick"),
                ("long lasting", "matte finish", "waterproof", "cruelty free", "moisturizing", "vegan"),
                {"color": ("ruby red", "nude beige", "berry", "coral", "mauve", "deep plum"),
                 "size": ("pack of 1", "pack of 2", "pack of 3")},
                (5.0, 28.0), ("Velvet Lip Color", "Creamy Bullet", "Bold Pigment")),
    ProductType("beauty", "hair dryer", ("Beauty & Personal Care", "Hair Care", "Styling Tools", "Hair Dryers"),
                ("ionic", "fast drying", "low noise", "lightweight", "with diffuser", "foldable handle"),
                {"color": ("black", "white", "rose gold", "lilac"), "plug type": ("us plug", "uk plug", "eu plug")},
                (18.0, 95.0), ("1875W", "Professional Blow Dryer", "Travel Friendly")),
    ProductType("beauty", "makeup brush set", ("Beauty & Personal Care", "Tools & Accessories", "Makeup Brushes"),
                ("synthetic bristles", "cruelty free", "with travel case", "easy to clean", "soft", "high quality"),
                {"color": ("black", "rose gold", "champagne", "marble white"),
                 "size": ("10 pieces", "14 pieces", "18 pieces")},
                (8.0, 40.0), ("Foundation Blending Kit", "Eyeshadow and Powder", "Professional Set")),
    # ------------------------------------------------------------------ electronics
    ProductType("electronics", "wireless earbuds", ("Electronics", "Headphones, Earbuds & Accessories", "Earbuds"),
                ("noise cancelling", "bluetooth 5.3", "water resistant", "long battery life", "wireless charging case",
                 "built in microphone"),
                {"color": ("black", "white", "navy blue", "sage green"), "style": ("standard", "sport fit", "pro")},
                (19.0, 150.0), ("True Wireless", "Stereo Sound", "In Ear Headphones")),
    ProductType("electronics", "phone case", ("Electronics", "Cell Phones & Accessories", "Cases", "Basic Cases"),
                ("shockproof", "slim fit", "wireless charging compatible", "clear back", "military grade",
                 "with screen protector"),
                {"color": ("black", "clear", "midnight green", "lavender", "red"),
                 "size": ("iphone 14", "iphone 15", "iphone 15 pro", "galaxy s23", "galaxy s24")},
                (7.0, 35.0), ("Protective Cover", "Drop Tested", "Anti Scratch")),
    ProductType("electronics", "usb c charger", ("Electronics", "Cell Phones & Accessories", "Chargers & Power Adapters"),
                ("fast charging", "gan technology", "foldable plug", "dual port", "compact design", "overheat protection"),
                {"color": ("white", "black", "grey"), "size": ("20w", "35w", "65w", "100w")},
                (10.0, 60.0), ("Wall Charger Block", "Power Adapter", "PD Charger")),
    ProductType("electronics", "bluetooth speaker", ("Electronics", "Portable Audio & Video", "Portable Speakers"),
                ("waterproof", "long battery life", "deep bass", "portable", "stereo pairing", "built in microphone"),
                {"color": ("black", "blue", "red", "camouflage", "teal")},
                (20.0, 130.0), ("Outdoor Speaker", "360 Degree Sound", "Rugged Design")),
    ProductType("electronics", "hdmi cable", ("Electronics", "Accessories & Supplies", "Audio & Video Accessories",
                                              "Cables", "HDMI Cables"),
                ("high speed", "4k 60hz", "braided", "gold plated", "8k support", "ethernet channel"),
                {"size": ("3 ft", "6 ft", "10 ft", "15 ft"), "style": ("pack of 1", "pack of 2", "pack of 3")},
                (6.0, 30.0), ("Cord", "for TV and Monitor", "Gaming Ready")),
    ProductType("electronics", "laptop stand", ("Electronics", "Computers & Accessories", "Laptop Accessories", "Stands"),
                ("adjustable height", "aluminum", "foldable", "ergonomic", "ventilated", "non slip"),
                {"color": ("silver", "space grey", "black", "rose gold")},
                (15.0, 60.0), ("for Desk", "Portable Riser", "Fits 10-17 Inch Laptops")),
    # ------------------------------------------------------------------ fashion
    ProductType("fashion", "running shoes", ("Clothing, Shoes & Jewelry", "Men", "Shoes", "Athletic", "Running"),
                ("non slip", "breathable", "lightweight", "memory foam", "arch support", "wide width"),
                {"color": ("black", "white", "grey", "navy blue", "red"), "size": SHOE_SIZES},
                (28.0, 120.0), ("Road Running Sneakers", "Athletic Trainers", "Cushioned Sole")),
    ProductType("fashion", "t-shirt", ("Clothing, Shoes & Jewelry", "Men", "Clothing", "Shirts", "T-Shirts"),
                ("cotton", "machine wash", "short sleeve", "crew neck", "moisture wicking", "relaxed fit"),
                {"color": ("black", "white", "heather grey", "navy blue", "olive green", "burgundy"),
                 "size": APPAREL_SIZES},
                (8.0, 35.0), ("Everyday Tee", "Soft Jersey", "Classic Top")),
    ProductType("fashion", "yoga pants", ("Clothing, Shoes & Jewelry", "Women", "Clothing", "Active", "Leggings"),
                ("high waist", "tummy control", "with pockets", "squat proof", "four way stretch", "quick dry"),
                {"color": ("black", "charcoal", "navy blue", "dusty rose", "forest green"), "size": APPAREL_SIZES},
                (14.0, 45.0), ("Workout Leggings", "Full Length", "Buttery Soft")),
    ProductType("fashion", "winter jacket", ("Clothing, Shoes & Jewelry", "Women", "Clothing", "Coats, Jackets & Vests"),
                ("water resistant", "hooded", "warm fleece lining", "zipper closure", "packable", "windproof"),
                {"color": ("black", "camel", "navy blue", "burgundy", "olive green"), "size": APPAREL_SIZES},
                (40.0, 160.0), ("Puffer Coat", "Quilted Outerwear", "Cold Weather")),
    ProductType("fashion", "wool socks", ("Clothing, Shoes & Jewelry", "Men", "Clothing", "Socks", "Casual"),
                ("merino wool", "cushioned", "moisture wicking", "odor resistant", "machine wash", "thermal"),
                {"color": ("grey", "black", "brown", "assorted colors"), "size": ("pack of 3", "pack of 5", "pack of 6")},
                (10.0, 38.0), ("Hiking Crew Socks", "Winter Warm", "Boot Socks")),
    # ------------------------------------------------------------------ food
    ProductType("food", "green tea", ("Grocery & Gourmet Food", "Beverages", "Tea", "Green Tea"),
                ("organic", "caffeine free", "non gmo", "individually wrapped", "gluten free", "sugar free"),
                {"flavor": ("jasmine", "matcha", "mint", "lemon ginger", "original"),
                 "size": ("20 count", "40 count", "100 count")},
                (4.0, 26.0), ("Tea Bags", "Loose Leaf Blend", "Premium Harvest")),
    ProductType("food", "protein bar", ("Grocery & Gourmet Food", "Snack Foods", "Bars", "Protein Bars"),
                ("gluten free", "low sugar", "high protein", "keto friendly", "plant based", "non gmo"),
                {"flavor": ("chocolate chip", "peanut butter", "cookies and cream", "salted caramel", "blueberry"),
                 "size": ("12 count", "15 count", "24 count")},
                (12.0, 45.0), ("Snack Bars", "On the Go Nutrition", "20g Protein")),
    ProductType("food", "coffee beans", ("Grocery & Gourmet Food", "Beverages", "Coffee", "Whole Coffee Beans"),
                ("organic", "fair trade", "medium roast", "dark roast", "single origin", "low acid"),
                {"size": ("12 ounce", "2 pound", "5 pound"), "flavor": ("colombian", "espresso", "french roast",
                                                                      "breakfast blend")},
                (9.0, 55.0), ("Whole Bean Coffee", "Freshly Roasted", "Arabica")),
    ProductType("food", "mixed nuts", ("Grocery & Gourmet Food", "Snack Foods", "Nuts & Seeds", "Mixed Nuts"),
                ("unsalted", "roasted", "non gmo", "resealable bag", "kosher", "high protein"),
                {"flavor": ("lightly salted", "honey roasted", "unsalted", "sea salt and pepper"),
                 "size": ("1 pound", "2 pound", "3 pound")},
                (8.0, 40.0), ("Snack Mix", "Deluxe Blend", "Cashews Almonds Pecans")),
    ProductType("food", "olive oil", ("Grocery & Gourmet Food", "Pantry Staples", "Cooking Oils", "Olive Oil"),
                ("extra virgin", "cold pressed", "organic", "first harvest", "non gmo", "glass bottle"),
                {"size": ("16.9 fl oz", "25.3 fl oz", "33.8 fl oz", "1 gallon")},
                (8.0, 50.0), ("Cooking Oil", "Mediterranean", "Imported")),
    ProductType("food", "dark chocolate", ("Grocery & Gourmet Food", "Candy & Chocolate", "Chocolate Bars"),
                ("70 percent cacao", "vegan", "sugar free", "fair trade", "gluten free", "individually wrapped"),
                {"flavor": ("sea salt", "almond", "orange", "mint", "raspberry"), "size": PACKS},
                (5.0, 35.0), ("Chocolate Bar", "Gourmet Treat", "Rich and Smooth")),
    # ------------------------------------------------------------------ home
    ProductType("home", "office chair", ("Home & Kitchen", "Furniture", "Home Office Furniture", "Home Office Chairs"),
                ("lumbar support", "adjustable height", "breathable mesh", "with armrests", "swivel",
                 "easy assembly"),
                {"color": ("black", "grey", "white", "blue")},
                (60.0, 260.0), ("Ergonomic Desk Chair", "Computer Task Chair", "High Back")),
    ProductType("home", "bath towel set", ("Home & Kitchen", "Bath", "Towels", "Towel Sets"),
                ("100 percent cotton", "quick dry", "highly absorbent", "machine wash", "soft", "hotel quality"),
                {"color": ("white", "grey", "navy blue", "sage green", "beige"),
                 "size": ("2 piece", "4 piece", "6 piece", "8 piece")},
                (18.0, 70.0), ("Bathroom Towels", "Plush Terry", "Spa Collection")),
    ProductType("home", "throw pillow cover", ("Home & Kitchen", "Home Décor Products", "Decorative Pillows",
                                               "Throw Pillow Covers"),
                ("velvet", "hidden zipper", "machine wash", "double sided", "for living room", "soft"),
                {"color": ("mustard yellow", "emerald green", "navy blue", "blush pink", "cream"),
                 "size": ("16x16 inch", "18x18 inch", "20x20 inch")},
                (8.0, 30.0), ("Cushion Case", "Set of 2", "Modern Decor")),
    ProductType("home", "storage ottoman", ("Home & Kitchen", "Furniture", "Living Room Furniture", "Ottomans"),
                ("foldable", "faux leather", "with lid", "easy assembly", "for living room", "space saving"),
                {"color": ("black", "brown", "grey", "beige"), "size": ("small", "medium", "large")},
                (25.0, 110.0), ("Footrest Bench", "Storage Box", "Padded Seat")),
    ProductType("home", "bookshelf", ("Home & Kitchen", "Furniture", "Living Room Furniture", "Bookcases"),
                ("easy assembly", "wood finish", "5 tier", "space saving", "metal frame", "for living room"),
                {"color": ("rustic brown", "white", "black", "walnut")},
                (35.0, 180.0), ("Open Shelving Unit", "Display Rack", "Industrial Style")),
    ProductType("home", "table lamp", ("Home & Kitchen", "Lighting & Ceiling Fans", "Lamps & Shades", "Table Lamps"),
                ("dimmable", "with usb port", "touch control", "energy efficient", "for bedroom", "fabric shade"),
                {"color": ("black", "white", "brass", "grey", "green")},
                (15.0, 75.0), ("Bedside Light", "Nightstand Lamp", "Mid Century")),
)

# Sentences for descriptions, features and reviews. "{attr}" / "{noun}" / "{brand}" are filled in.
DESCRIPTION_OPENERS = (
    "Meet the {brand} {noun}, made for people who want something that simply works.",
    "The {brand} {noun} was designed around everyday use and honest materials.",
    "Looking for a dependable {noun}? {brand} built this one to last.",
    "{brand} brings you a {noun} that balances quality and value.",
)
DESCRIPTION_ATTRIBUTE = (
    "It is {attr}, so you can count on it day after day.",
    "Every unit is {attr} and checked before it leaves our workshop.",
    "Customers choose it because it is {attr}.",
    "We made it {attr} without raising the price.",
)
DESCRIPTION_CLOSERS = (
    "Backed by a 30-day satisfaction promise.",
    "Questions? Our support team answers within one business day.",
    "A thoughtful gift for friends and family.",
    "Ships in recyclable packaging.",
)
FEATURE_TEMPLATES = (
    "{attr_upper}: {reason}",
    "{attr_upper} - {reason}",
)
FEATURE_REASONS = (
    "tested for real-world use",
    "one less thing to worry about",
    "a detail our customers asked for",
    "made to keep up with a busy routine",
    "built to the same standard in every batch",
)
GENERIC_FEATURES = (
    "WHAT YOU GET: one {noun} and a quick start card",
    "CARE: see the label for care instructions",
    "SUPPORT: friendly customer service if anything goes wrong",
    "QUALITY CHECK: every {noun} is inspected by hand",
)
REVIEWS = {
    5: ("Exactly what I was looking for. Would buy again.", "Great {noun}, arrived quickly and works perfectly.",
        "Better than I expected for the price."),
    4: ("Very good overall, only a small quibble with the packaging.", "Solid {noun}. Does the job well.",
        "Happy with it; the color is slightly different from the photo."),
    3: ("It is okay. Not bad, not amazing.", "Average {noun}; fine for occasional use.",
        "Works, but I expected a bit more."),
    2: ("Stopped working as well after a few weeks.", "Not quite as described.",
        "The size ran differently from what I expected."),
}
REVIEW_TITLES = {5: "Love it", 4: "Pretty good", 3: "It's fine", 2: "Disappointed"}

# How shoppers phrase a request. "{what}" is the noun with the goal's attributes, "{opts}" the options.
INSTRUCTION_TEMPLATES = (
    "i need {what}{opts}",
    "i am looking for {what}{opts}",
    "find me {what}{opts}",
    "i want to buy {what}{opts}",
    "i'm searching for {what}{opts}",
    "please get me {what}{opts}",
)
