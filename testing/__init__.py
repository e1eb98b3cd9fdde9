"""Test doubles and Meta's spec, for tests and local runs only (``pip install
'nyala[test]'``): the fake Graph API (:mod:`testing.fake_graph`, also ``nyala fake-graph``)
and the validator of requests against Meta's OpenAPI spec (:mod:`testing.meta_spec`).
The runtime never imports this package."""
