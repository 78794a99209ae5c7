"""Every Redis key prefix and channel the gateway uses, in one place."""

PREFIX = "gw:"
# Pub/sub channel carrying "customer N changed" so every process refreshes its restriction index.
INVALIDATE_CHANNEL = PREFIX + "invalidate"
# PostgreSQL LISTEN/NOTIFY channel with the same payload, used when Redis is down.
PG_INVALIDATE_CHANNEL = "gateway_invalidate"
# provider id → its answer (JSON, or a reference to a template: gateway/decide/remembered.py), for
# idempotent retries: IDEMPOTENCY + channel + ":" + provider_id
IDEMPOTENCY = PREFIX + "idem:"
# A template many remembered answers refer to (gateway/decide/remembered.py): ANSWER_TEMPLATE + digest
ANSWER_TEMPLATE = PREFIX + "answer-template:"
# Set while some process holds contacts in its spool not yet replayed into the log: every process
# then claims provider ids in Redis before committing (the log's unique key cannot see the spool).
SPOOLED = PREFIX + "spooled"
# contact counters for contact_limit and manager rules: COUNTER + counter key
COUNTER = PREFIX + "count:"
# acknowledgement rate limits: ACK_LIMIT + sender + ":" + case (or "none"); ACK_LIMIT + "day:" + date + ":" + sender
ACK_LIMIT = PREFIX + "ack:"
# Pub/sub channel of banners for agent screens.
BANNER_CHANNEL = PREFIX + "banners"
# API key hash (hex) → the principal, so a newly started process can check keys while the database is away.
API_KEY = PREFIX + "key:"
# Web form submissions per address per hour: WEBFORM_LIMIT + address
WEBFORM_LIMIT = PREFIX + "webform:"
# A Mailgun post's signed token → a digest of the message it came with (a token seen again with
# another message is a replayed signature): MAILGUN_TOKEN + token
MAILGUN_TOKEN = PREFIX + "mailgun:"
