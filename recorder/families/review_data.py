"""Phrase tables of the reviews-aggregate family: every sentence a review can contain.

A review is a few sentences: an optional opener, sentences about topics, an
optional decoy, and one *verdict* that carries the overall sentiment. Verdicts
use negation and indirection ("Not bad at all, honestly." is positive, "Not
great, not terrible." neutral), decoys borrow topic words without being about
the topic ("It delivers exactly what the listing promised." is not about
delivery), so word lists misjudge; the simulator's oracle looks sentences up
here. Every sentence starts with a capital, ends with "." or "!", and has no
other ".!?" or double quote inside, so sentences can be found in any text.
"""

from __future__ import annotations

__all__ = ["DECOYS", "MONTHS", "OPENERS", "PRODUCTS", "SENTIMENTS", "TOPICS", "TOPIC_PHRASES", "VERDICTS"]

SENTIMENTS: tuple[str, ...] = ("positive", "negative", "neutral")
MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
PRODUCTS: tuple[str, ...] = (
    "headphones",
    "blender",
    "smartwatch",
    "speaker",
    "kettle",
    "robot vacuum",
    "e-reader",
    "desk lamp",
    "air fryer",
    "electric toothbrush",
    "coffee grinder",
    "fan",
)

# topic -> how the question names it
TOPICS: dict[str, str] = {
    "delivery": "the delivery or shipping",
    "battery": "the battery or charging",
    "support": "customer service or support",
    "price": "the price or value for money",
    "packaging": "the packaging",
    "noise": "how quiet or noisy the product is",
}

VERDICTS: dict[str, tuple[str, ...]] = {
    "positive": (
        "Love it!",
        "Highly recommend.",
        "Five stars from me.",
        "Not disappointed at all.",
        "Can't complain, it works great.",
        "Better than I expected.",
        "Not bad at all, honestly.",
        "Would buy again without hesitation.",
        "Exceeded my expectations.",
        "I was skeptical, but it won me over.",
    ),
    "negative": (
        "Would not recommend.",
        "Returned it after two days.",
        "Not worth it.",
        "Can't say I'm happy with it.",
        "Total disappointment.",
        "I wanted to love it, but I don't.",
        "Never buying this brand again.",
        "Not what I hoped for.",
        "It broke within a week.",
        "I regret this purchase.",
    ),
    "neutral": (
        "It's okay, nothing special.",
        "Does the job, no more, no less.",
        "Average overall.",
        "Not great, not terrible.",
        "Mixed feelings, but it works.",
        "It is fine for what it is.",
        "Neither impressed nor disappointed.",
    ),
}

# topic -> sentiment -> sentences about that topic
TOPIC_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "delivery": {
        "positive": (
            "Arrived two days early.",
            "Shipping was quick and painless.",
            "The courier dropped it off the next morning.",
        ),
        "negative": (
            "Delivery took almost three weeks.",
            "The parcel was left in the rain by the courier.",
            "Shipping was slow and the tracking never updated.",
        ),
        "neutral": ("It came by regular post.", "Shipping took the usual few days."),
    },
    "battery": {
        "positive": (
            "The battery lasts all week.",
            "A single charge holds for days.",
            "Battery life is excellent.",
        ),
        "negative": (
            "The battery dies before lunch.",
            "It needs charging twice a day.",
            "Battery life is a joke.",
        ),
        "neutral": ("It charges over USB-C.", "The battery takes about two hours to charge."),
    },
    "support": {
        "positive": (
            "Customer service replaced a faulty part within a day.",
            "The support team was friendly and fast.",
        ),
        "negative": (
            "Support never answered my emails.",
            "Customer service kept me on hold for an hour.",
            "The help desk was useless.",
        ),
        "neutral": ("I had to contact support once to register it.",),
    },
    "price": {
        "positive": (
            "Great value for the price.",
            "Worth every penny.",
            "Cheaper than the competition and just as good.",
        ),
        "negative": (
            "Way overpriced for what you get.",
            "Too expensive for such flimsy plastic.",
            "Not worth what I paid.",
        ),
        "neutral": ("It was on sale when I bought it.",),
    },
    "packaging": {
        "positive": ("Nicely packaged with no plastic waste.", "The box was sturdy and well padded."),
        "negative": ("The box was crushed and the seal was broken.", "Way too much plastic wrapping."),
        "neutral": ("It comes in a plain cardboard box.",),
    },
    "noise": {
        "positive": ("It runs whisper quiet.", "Barely makes a sound.", "Quiet enough to use at night."),
        "negative": (
            "It is painfully loud.",
            "The rattling noise drives me crazy.",
            "Way too noisy for an apartment.",
        ),
        "neutral": ("It hums a little when running.",),
    },
}

# sentences that borrow topic words but are about no topic; by sentiment
DECOYS: dict[str, tuple[str, ...]] = {
    "positive": (
        "It delivers exactly what the listing promised.",
        "Out of the box it just worked.",
        "My battery of kitchen gadgets just got better.",
        "Sounds silly, but it changed my mornings.",
        "Our cat is not impressed, but we are.",
    ),
    "negative": (
        "It delivers nothing the listing promised.",
        "Out of the box it refused to start.",
        "Sounds harsh, but I expected more.",
    ),
    "neutral": (
        "The manual is short.",
        "The colour matches the photos.",
        "Sounds like a lot of words for a simple gadget.",
    ),
}

OPENERS: tuple[str, ...] = (
    "Bought the {product} for my daughter.",
    "This is my second {product}.",
    "Got this {product} as a gift.",
    "Using the {product} daily for a month now.",
    "Ordered the {product} on a whim.",
    "Replaced my old {product} with this one.",
)
