"""What marketers read: source quality with change detection, drift, the follow-up SLA, the
funnel plan and model health, each a page with a JSON twin; alerts; one dashboard; and the
model-quality page of each training run."""
