"""Firmographic and demographic fit: size and revenue bands, free-mail detection.

Fit says whether a lead looks like a buyer at all, whatever it does: a student on
gmail.com downloading every ebook is engaged but not a fit.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.arrow import one_array

#: upper bounds (inclusive) of the employee bands: 1-10, 11-50, ..., over 10,000
EMPLOYEE_BAND_EDGES: Final = np.array([10, 50, 200, 1_000, 5_000, 10_000], dtype=float)
EMPLOYEE_BAND_LABELS: Final = (
    "1-10",
    "11-50",
    "51-200",
    "201-1000",
    "1001-5000",
    "5001-10000",
    "10000+",
)
#: upper bounds (exclusive) of the revenue bands, in the export's currency
REVENUE_BAND_EDGES: Final = np.array([1e6, 1e7, 5e7, 1e8, 5e8, 1e9])
REVENUE_BAND_LABELS: Final = ("<1M", "1-10M", "10-50M", "50-100M", "100-500M", "500M-1B", "1B+")

#: common free-mail providers; a lead on one of these is a person, not a company
FREE_MAIL_DOMAINS: Final = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
        "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com",
        "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com",
        "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "mail.com", "zoho.com",
        "yandex.ru", "yandex.com", "ya.ru", "mail.ru", "bk.ru", "inbox.ru", "list.ru",
        "rambler.ru", "qq.com", "163.com", "126.com", "rediffmail.com", "libero.it", "orange.fr",
        "free.fr", "wp.pl", "o2.pl", "seznam.cz",
    }
)  # fmt: skip


def employees_band(employees: np.ndarray) -> np.ndarray:
    """Ordinal employee band (0..6) as float; NaN where unknown."""
    values = np.asarray(employees, dtype=float)
    band = np.searchsorted(EMPLOYEE_BAND_EDGES, values, side="left").astype(float)
    band[np.isnan(values)] = np.nan
    return band


def revenue_band(revenue: np.ndarray) -> np.ndarray:
    """Ordinal revenue band (0..6) as float; NaN where unknown."""
    values = np.asarray(revenue, dtype=float)
    band = np.searchsorted(REVENUE_BAND_EDGES, values, side="right").astype(float)
    band[np.isnan(values)] = np.nan
    return band


def free_mail(emails: pd.Series) -> np.ndarray:
    """`is_free_mail` of a column of addresses at once (Arrow's string kernels): the domain
    after the last @, trimmed and lower-cased, looked up in the same list."""
    text = one_array(emails.astype("str") if emails.dtype == object else emails)
    if len(text) == 0:
        return np.array([], dtype=float)
    domain = pc.utf8_lower(
        pc.utf8_trim_whitespace(pc.extract_regex(text, r"@(?P<domain>[^@]*)$").field("domain"))
    )
    known = pa.array(sorted(FREE_MAIL_DOMAINS), domain.type)
    free = pc.is_in(domain, value_set=known).to_numpy(zero_copy_only=False).astype(float)
    usable = pc.fill_null(pc.greater(pc.utf8_length(domain), 0), False)
    return np.where(usable.to_numpy(zero_copy_only=False), free, np.nan)


def is_free_mail(email: str | None) -> float:
    """1.0 for a free-mail address, 0.0 for a company one, NaN without a usable email."""
    if not email or "@" not in email:
        return float("nan")
    domain = email.rsplit("@", 1)[1].strip().lower()
    if not domain:
        return float("nan")
    return 1.0 if domain in FREE_MAIL_DOMAINS else 0.0
