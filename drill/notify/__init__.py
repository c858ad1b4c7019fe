"""Contact chains: notifiers (one module per `via`), escalation, and the acknowledgement endpoint."""
