"""The WhatsApp channel: the signed webhook, typed payloads, the durable inbox and outbox,
delivery statuses, message bodies for the Cloud API and the Graph API client."""
