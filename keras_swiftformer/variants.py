"""The SwiftFormer variants as data: architecture plus what the paper reports for them."""

VARIANTS = {
    "XS": {
        "depths": (3, 3, 6, 4),
        "widths": (48, 56, 112, 220),
        "paper": {"params_m": 3.5, "gmacs": 0.6, "top1": 75.7},
    },
    "S": {
        "depths": (3, 3, 9, 6),
        "widths": (48, 64, 168, 224),
        "paper": {"params_m": 6.1, "gmacs": 1.0, "top1": 78.5},
    },
    "L1": {
        "depths": (4, 3, 10, 5),
        "widths": (48, 96, 192, 384),
        "paper": {"params_m": 12.1, "gmacs": 1.6, "top1": 80.9},
    },
    "L3": {
        "depths": (4, 4, 12, 6),
        "widths": (64, 128, 320, 512),
        "paper": {"params_m": 28.5, "gmacs": 4.0, "top1": 83.0},
    },
}


def get_variant(variant):
    """Looks a variant up by its id ("XS", "S", "L1", "L3"; case-insensitive)."""
    key = str(variant).upper()
    if key not in VARIANTS:
        raise ValueError(
            f"Unknown SwiftFormer variant. Expected one of {list(VARIANTS)}. "
            f"Received: variant={variant!r}"
        )
    return key, VARIANTS[key]


def find_variant(depths, widths):
    """The id of the variant with these depths and widths, or None."""
    for key, spec in VARIANTS.items():
        if tuple(spec["depths"]) == tuple(depths) and tuple(spec["widths"]) == tuple(widths):
            return key
    return None
