"""The deterministic steps around the LLM: no model call in here.

candidates (the causes the differential may rank), regimens (the knowledge-base regimens the plan may choose),
safety_review (the plan's drugs against the record), grounding (the draft's numbers and citations against the tool
results), injection (plan actions that echo instructions planted in record text). The LLM steps are the modules of
`agents/` itself.
"""
