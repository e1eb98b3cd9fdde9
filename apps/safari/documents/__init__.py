"""The safari app's documents: receipts and pre-tour summaries (with the PDF itinerary).

Built on the generic :mod:`documents` (branding, HTML → PDF, numbering, storage, money):
the templates, the data builders, the weather outlook and the outreach templates
(``templates.yaml``) are the app's.
"""

from apps.safari.documents.service import TEMPLATES_FILE, SafariDocuments

__all__ = ["TEMPLATES_FILE", "SafariDocuments"]
