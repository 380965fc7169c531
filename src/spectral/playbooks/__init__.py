"""The runbook's five restore playbooks: their steps, by posture tier."""
