"""Layer 4: the store (tables, migrations, reads and writes, PII hashing), the outcome
vocabulary, CRM import and the demo funnel. Imports only `features`."""
