"""Layer 1, the top: the edges. The HTTP app, the `leadloop` command line and the one
`Settings`; the only layer that reads settings."""
