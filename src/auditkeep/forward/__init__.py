"""Forwarding the committed log to other systems (files, Splunk HEC, webhooks, syslog, NATS),
each target followed by its own durable cursor (docs/forwarding.md)."""
