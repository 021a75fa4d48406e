"""Who may open the workspace: users from settings, API keys, a signed session cookie.

Sign-in takes a user of `LEADSCORE_UI_USERS` (entries `name:role:pbkdf2_sha256$...`,
made by `leadscore ui-user`; role `marketing` reads, `admin` may also apply a points
matrix) or, with any user name, one of `LEADSCORE_API_KEYS` (marketing) or
`LEADSCORE_ADMIN_KEYS` (admin). The session is a cookie signed with HMAC-SHA256 under
`LEADSCORE_UI_SECRET` (set it when several workers serve, or sessions end at a restart):
the user, the role, an expiry and a CSRF token that every form and the what-if calls
send back. Passwords are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal

from serving.config import Settings

Role = Literal["marketing", "admin"]
ROLES: Final[tuple[Role, ...]] = ("marketing", "admin")
SESSION_COOKIE: Final = "ls_session"
SESSION_SECONDS: Final = 12 * 3600
ITERATIONS: Final = 200_000
SCHEME: Final = "pbkdf2_sha256"


class UserEntryError(ValueError):
    """A LEADSCORE_UI_USERS entry that cannot be read (says which, never its hash)."""


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def user_entry(name: str, role: Role, password: str) -> str:
    """One LEADSCORE_UI_USERS entry (`leadscore ui-user` prints it)."""
    if not name or ":" in name or "," in name:
        raise UserEntryError("a user name must be non-empty, without ':' or ','")
    return f"{name}:{role}:{hash_password(password)}"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str

    def check(self, password: str) -> bool:
        scheme, iterations, salt, digest = self.password_hash.split("$")
        given = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
        )
        return scheme == SCHEME and hmac.compare_digest(given.hex(), digest)


def parse_users(entries: list[str]) -> dict[str, User]:
    users = {}
    for i, entry in enumerate(entries):
        parts = entry.split(":", 2)
        if len(parts) != 3 or parts[1] not in ROLES:
            raise UserEntryError(
                f"LEADSCORE_UI_USERS entry {i + 1}: expected name:role:hash with role "
                f"marketing or admin (leadscore ui-user makes one)"
            )
        name, role, password_hash = parts
        fields = password_hash.split("$")
        if len(fields) != 4 or fields[0] != SCHEME or not fields[1].isdigit():
            raise UserEntryError(
                f"LEADSCORE_UI_USERS entry {i + 1} ({name}): the hash is not {SCHEME}$..."
            )
        users[name] = User(name, role, password_hash)  # type: ignore[arg-type]
    return users


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    expires: int
    csrf: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Sessions:
    """Signs in and reads sessions, with the settings' users, keys and secret."""

    def __init__(self, settings: Settings) -> None:
        self.users = parse_users(settings.ui_users)
        self.secret = (settings.ui_secret or secrets.token_hex(32)).encode()
        self.generated_secret = not settings.ui_secret
        self.api_keys = list(settings.api_keys)
        self.admin_keys = list(settings.admin_keys)

    @property
    def anyone_can_sign_in(self) -> bool:
        return bool(self.users or self.api_keys or self.admin_keys)

    def sign_in(self, name: str, password: str) -> Session | None:
        user = self.users.get(name)
        role: Role | None = None
        if user is not None and user.check(password):
            role = user.role
        elif _matches(password, self.admin_keys):
            role = "admin"
        elif _matches(password, self.api_keys):
            role = "marketing"
        if role is None:
            return None
        return Session(
            name or "key", role, int(time.time()) + SESSION_SECONDS, secrets.token_urlsafe(16)
        )

    def cookie(self, session: Session) -> str:
        body = base64.urlsafe_b64encode(
            json.dumps([session.user, session.role, session.expires, session.csrf]).encode()
        ).decode()
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            user, role, expires, csrf = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if role not in ROLES or int(expires) < time.time():
            return None
        if user in self.users and self.users[user].role != role:  # a role taken away
            return None
        return Session(str(user), role, int(expires), str(csrf))

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()


def _matches(given: str, keys: list[str]) -> bool:
    return bool(given) and any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)
