"""SLA accountability: an SLA definition, its contract periods, and what was measured in them."""
