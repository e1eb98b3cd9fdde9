"""Example bots built on Nyala, one folder each (run with ``nyala --app examples/<name>``)."""
