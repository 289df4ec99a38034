"""The HMAC engine: a provider's signing scheme as facts, used both to verify deliveries and to
sign samples (``payhook send``), so the two can never disagree.

A scheme says which header carries the signature and how it lists signatures (one value;
``key=value`` pairs with a timestamp, as Stripe and Paddle; versioned entries, as Standard
Webhooks), what is signed (a template over the body, the timestamp, a message id, the
configured URL and other headers), the algorithm, how the MAC is written (hex or base64, a
prefix) and compared (as sent, or decoded), and how a secret becomes a key. Keys are prepared
once (``hmac.new(key, digestmod)``) and copied per message. Every malformed, missing, expired
or wrong input is one ``VerificationError``.
"""

from payhook.providers.hmac.engine import ALGORITHMS, HmacEngine, Signed
from payhook.providers.hmac.provider import HmacProvider
from payhook.providers.hmac.scheme import (
    HmacScheme,
    Listing,
    OneSignature,
    OptionalPrefix,
    Pairs,
    Part,
    Received,
    Versioned,
    parse_template,
    utf8_key,
    whsec_key,
)

__all__ = [
    "ALGORITHMS",
    "HmacEngine",
    "HmacProvider",
    "HmacScheme",
    "Listing",
    "OneSignature",
    "OptionalPrefix",
    "Pairs",
    "Part",
    "Received",
    "Signed",
    "Versioned",
    "parse_template",
    "utf8_key",
    "whsec_key",
]
