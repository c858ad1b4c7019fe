"""Probing from several sites: agents at each site, the coordinator in `drill run`, NATS JetStream between."""
