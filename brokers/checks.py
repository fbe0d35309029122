"""System checks of the broker settings: a bad rate budget is refused at start-up, not at the
first order that would build a Tradier client with it."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.compatibility)
def tradier_rate_budgets(app_configs, **kwargs):
    errors = []
    margin = settings.TRADIER_RATE_SAFETY_MARGIN_PCT
    if not 0 <= margin < 100:
        errors.append(Error(
            f"TRADIER_RATE_SAFETY_MARGIN_PCT={margin} leaves no budget: it is the percent of Tradier's published "
            "limits never spent.", hint="Use a value from 0 to below 100 (20 by default).", id="brokers.E001"))
    if settings.TRADIER_MODIFY_BUDGET_PER_MINUTE < 1:
        errors.append(Error(
            f"TRADIER_MODIFY_BUDGET_PER_MINUTE={settings.TRADIER_MODIFY_BUDGET_PER_MINUTE} would refuse every stop "
            "modification.", hint="Use 1 or more (10 by default).",
            id="brokers.E002"))
    return errors
