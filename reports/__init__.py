"""What marketers read: source quality with change detection, drift, the follow-up SLA, the
funnel plan and model health, each a page with a JSON twin; alerts; one dashboard; and the
model-quality page of each training run."""

#: How rarely, at most, chance alone names a stable source as having stopped converting at one
#: report, by default (`LEADLOOP_CHANGE_FALSE_ALARM_RATE`; see `reports.rate_change`). Here, in
#: a module that imports nothing, so the settings can read it without loading the reports.
DEFAULT_FALSE_ALARM_RATE = 2e-3
