"""The SMTP resource: the mail server notifications send through.

Built from the settings: `GSDP_SMTP_HOST`, `GSDP_SMTP_PORT` (default 25), `GSDP_SMTP_USER`,
`GSDP_SMTP_PASSWORD` (read by `EnvVar`, so it never shows in the UI) and `GSDP_SMTP_STARTTLS=1`.
Without a host, no mail goes out (a notification with `email` fails its delivery, saying so).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Optional

import dagster as dg

from gs_assets.settings import Settings


class SmtpResource(dg.ConfigurableResource):
    """Where notifications are mailed through; `host` unset = mail is not configured."""

    host: Optional[str] = None
    port: int = 25
    user: Optional[str] = None
    password: Optional[str] = None
    starttls: bool = False

    def send(self, msg: EmailMessage, timeout: float = 10) -> None:
        """Send one message (STARTTLS and login first when configured); raises OSError / SMTPException."""
        with smtplib.SMTP(self.host, self.port, timeout=timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg)


def smtp_resource_from_settings(settings: Optional[Settings] = None) -> SmtpResource:
    s = settings or Settings.from_env()
    kwargs: dict = {"host": s.smtp_host, "port": s.smtp_port, "user": s.smtp_user, "starttls": s.smtp_starttls}
    if s.smtp_password:
        kwargs["password"] = dg.EnvVar("GSDP_SMTP_PASSWORD")
    return SmtpResource(**kwargs)
