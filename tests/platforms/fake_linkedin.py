"""A local LinkedIn REST API that answers as the Posts and Images API documentation says."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.platforms.servers import FakeServer, Recorded, Reply

if TYPE_CHECKING:
    from tests.platforms.fake_oauth import OAuthAuthority

PERSON = "urn:li:person:8675309"

TOKEN_ERRORS = {
    "invalid": {
        "status": 401,
        "serviceErrorCode": 65600,
        "code": "INVALID_ACCESS_TOKEN",
        "message": "Invalid access token",
    },
    "expired": {
        "status": 401,
        "serviceErrorCode": 65601,
        "code": "EXPIRED_ACCESS_TOKEN",
        "message": "The token used in the request has expired",
    },
    "revoked": {
        "status": 401,
        "serviceErrorCode": 65602,
        "code": "REVOKED_ACCESS_TOKEN",
        "message": "The token used in the request has been revoked by the user",
    },
}
DAY_THROTTLE = {
    "status": 429,
    "serviceErrorCode": 101,
    "code": "TOO_MANY_REQUESTS",
    "message": "Resource level throttle MEMBER DAY limit for calls to this resource is reached.",
}
SERVER_ERROR = {"status": 500, "message": "Internal Server Error"}
NO_READ_PERMISSION = {
    "status": 403,
    "serviceErrorCode": 100,
    "code": "ACCESS_DENIED",
    "message": "Not enough permissions to access: partnerApiPostsExternal.FINDER-author.20260501",
}
NO_WRITE_PERMISSION = {
    "status": 403,
    "serviceErrorCode": 100,
    "code": "ACCESS_DENIED",
    "message": "Not enough permissions to access: partnerApiPostsExternal.CREATE.20260501",
}

_RESERVED = "\\|{}@[]()<>#*_~"


def unprocessable(message: str, code: str = "UNPROCESSABLE_ENTITY") -> dict[str, Any]:
    return {"status": 422, "code": code, "message": message}


def bad_request(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    return {"status": 400, "code": code, "message": message}


def parse_little(commentary: str) -> tuple[str, list[str]] | None:
    """The text a little-text commentary shows, and its hashtags; None if it is malformed.

    A reserved character must be escaped unless it starts a hashtag (`#word`).
    """
    shown: list[str] = []
    hashtags: list[str] = []
    i = 0
    while i < len(commentary):
        char = commentary[i]
        if char == "\\":
            if i + 1 >= len(commentary) or commentary[i + 1] not in _RESERVED:
                return None
            shown.append(commentary[i + 1])
            i += 2
            continue
        if char == "#":
            match = re.match(r"#([^\W_]+)", commentary[i:])
            if match is None:
                return None
            hashtags.append(match.group(1))
            shown.append(match.group(0))
            i += len(match.group(0))
            continue
        if char in _RESERVED:
            return None
        shown.append(char)
        i += 1
    return "".join(shown), hashtags


@dataclass
class Image:
    urn: str
    owner: str
    content: bytes | None = None
    content_type: str | None = None
    polls_left: int = 0
    failed: bool = False

    @property
    def status(self) -> str:
        if self.content is None:
            return "WAITING_UPLOAD"
        if self.failed:
            return "PROCESSING_FAILED"
        return "PROCESSING" if self.polls_left > 0 else "AVAILABLE"


@dataclass
class Post:
    urn: str
    body: dict[str, Any]
    shown: str
    hashtags: list[str] = field(default_factory=list)


class FakeLinkedIn(FakeServer):
    """Posts with LinkedIn's duplicate refusal, the Images API and its error bodies."""

    def __init__(self, *, author: str = PERSON) -> None:
        super().__init__()
        self.author = author
        self.tokens = {
            "good-token": "valid",
            "expired-token": "expired",
            "revoked-token": "revoked",
        }
        self.posts: dict[str, Post] = {}
        self.images: dict[str, Image] = {}
        #: GET /rest/images/{urn} answers PROCESSING this many times after an upload.
        self.processing_polls = 0
        self.fail_processing = False
        #: The token may read the author's posts (r_member_social / r_organization_social).
        self.can_read = True
        #: Likes and comments per post URN (see `engage`).
        self.social: dict[str, dict[str, int]] = {}
        #: The next create posts, then answers 500 as if the answer were lost on the way.
        self.lose_next_create = False
        #: Duplicate refusals name the earlier post (LinkedIn's usual message) or not.
        self.duplicate_names_urn = True
        self._ids = itertools.count(7_260_000_000_000_000_000)
        self._slugs = itertools.count(1)
        #: The member behind the token, as OpenID Connect userinfo gives it (GET /v2/userinfo).
        sub = author.rsplit(":", 1)[-1] if author.startswith("urn:li:person:") else "8675309"
        self.member: dict[str, Any] = {
            "sub": sub,
            "email_verified": True,
            "name": "Alice Example",
            "locale": {"country": "US", "language": "en"},
            "given_name": "Alice",
            "family_name": "Example",
            "picture": "https://media.licdn.example/alice.jpg",
        }
        #: The OAuth 2.0 authorization server (/oauth/v2/authorization, /oauth/v2/accessToken),
        #: once one is mounted (tests.platforms.fake_oauth.linkedin_authority).
        self.oauth: OAuthAuthority | None = None

    def respond(self, request: Recorded) -> Reply:
        if self.oauth is not None:
            answer = self.oauth.handle(request)
            if answer is not None:
                return answer
        header = request.headers.get("authorization", "")
        state = self.tokens.get(header.removeprefix("Bearer "), "invalid")
        if not header.startswith("Bearer ") or state != "valid":
            return Reply(401, TOKEN_ERRORS[state if state != "valid" else "invalid"])
        path, method = request.path, request.method
        if method == "GET" and path == "/v2/userinfo":
            # OpenID Connect userinfo: no LinkedIn-Version or Rest.li headers needed.
            return Reply(200, dict(self.member))
        if method == "PUT" and path.startswith("/dms-uploads/"):
            return self._receive(path.removeprefix("/dms-uploads/"), request)
        if not request.headers.get("linkedin-version"):
            return Reply(
                400,
                bad_request(
                    "A version must be present. Please specify a version by adding the "
                    "LinkedIn-Version header.",
                    "VERSION_MISSING",
                ),
            )
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return Reply(400, bad_request("Rest.li protocol version 2.0.0 is required"))
        if method == "POST" and path == "/rest/images":
            return self._initialize(request)
        if method == "GET" and path.startswith("/rest/images/"):
            return self._image(unquote(path.removeprefix("/rest/images/")))
        if method == "POST" and path == "/rest/posts":
            return self._create(request)
        if method == "GET" and path == "/rest/posts":
            return self._find(request)
        if method == "GET" and path.startswith("/rest/socialActions/"):
            return self._social_actions(path.removeprefix("/rest/socialActions/"))
        return Reply(404, {"status": 404, "message": "Not Found"})

    # -- social actions -------------------------------------------------------------------

    def engage(self, urn: str, *, likes: int = 0, comments: int = 0, first_level: int = 0) -> None:
        """People liked and commented on the post this often."""
        self.social[urn] = {"likes": likes, "comments": comments, "first_level": first_level}

    def _social_actions(self, encoded: str) -> Reply:
        """A summary of the post's likes and comments; the URN must be URL-encoded."""
        if ":" in encoded:
            return Reply(400, bad_request("The URN in the path must be URL-encoded"))
        urn = unquote(encoded)
        if not self.can_read:
            return Reply(
                403,
                {
                    "status": 403,
                    "serviceErrorCode": 100,
                    "code": "ACCESS_DENIED",
                    "message": "Not enough permissions to access: socialActions.GET.20260501",
                },
            )
        if urn not in self.posts:
            return Reply(404, {"status": 404, "code": "NOT_FOUND", "message": f"{urn} not found"})
        counts = self.social.get(urn, {"likes": 0, "comments": 0, "first_level": 0})
        return Reply(
            200,
            {
                "$URN": urn,
                "target": urn,
                "likesSummary": {
                    "likedByCurrentUser": False,
                    "totalLikes": counts["likes"],
                    "aggregatedTotalLikes": counts["likes"],
                    "selectedLikes": [],
                },
                "commentsSummary": {
                    "totalFirstLevelComments": counts["first_level"],
                    "aggregatedTotalComments": counts["comments"],
                    "selectedComments": [],
                },
            },
        )

    # -- images ---------------------------------------------------------------------------

    def _initialize(self, request: Recorded) -> Reply:
        if request.query.get("action") != ["initializeUpload"]:
            return Reply(400, bad_request("Unknown action"))
        owner = (request.json().get("initializeUploadRequest") or {}).get("owner")
        if owner != self.author:
            return Reply(403, NO_WRITE_PERMISSION)
        slug = f"C4E10AQ{next(self._slugs):08d}"
        urn = f"urn:li:image:{slug}"
        self.images[urn] = Image(urn, owner)
        return Reply(
            200,
            {
                "value": {
                    "uploadUrlExpiresAt": 1_900_000_000_000,
                    "uploadUrl": f"{self.url}/dms-uploads/{slug}",
                    "image": urn,
                }
            },
        )

    def _receive(self, slug: str, request: Recorded) -> Reply:
        image = self.images.get(f"urn:li:image:{slug}")
        if image is None or not request.body:
            return Reply(400, bad_request("Invalid upload"))
        image.content = request.body
        image.content_type = request.headers.get("content-type")
        image.polls_left = self.processing_polls
        image.failed = self.fail_processing
        return Reply(201, None)

    def _image(self, urn: str) -> Reply:
        image = self.images.get(urn)
        if image is None:
            return Reply(404, {"status": 404, "message": f"Image {urn} not found"})
        status = image.status
        if image.polls_left > 0:
            image.polls_left -= 1
        return Reply(200, {"owner": image.owner, "id": urn, "status": status})

    # -- posts ----------------------------------------------------------------------------

    def _create(self, request: Recorded) -> Reply:
        body = request.json()
        if body.get("author") != self.author:
            return Reply(403, NO_WRITE_PERMISSION)
        missing = [
            key
            for key in ("commentary", "visibility", "distribution", "lifecycleState")
            if key not in body
        ]
        if missing:
            return Reply(422, unprocessable(f"/{missing[0]} :: field is required but not found"))
        parsed = parse_little(body["commentary"])
        if parsed is None:
            return Reply(422, unprocessable("/commentary :: invalid little text"))
        shown, hashtags = parsed
        if len(shown) > 3000:
            return Reply(
                422, unprocessable("/commentary :: length 3001 exceeds maximum allowed 3000")
            )
        for urn in _image_urns(body):
            image = self.images.get(urn)
            if image is None or image.status != "AVAILABLE":
                return Reply(422, unprocessable(f"/content :: image {urn} is not available"))
        for post in self.posts.values():
            if post.body["commentary"] == body["commentary"] and _image_urns(
                post.body
            ) == _image_urns(body):
                message = (
                    f"Content is a duplicate of {post.urn}"
                    if self.duplicate_names_urn
                    else "Content is a duplicate"
                )
                return Reply(422, unprocessable(message, "DUPLICATE_POST"))
        urn = f"urn:li:share:{next(self._ids)}"
        self.posts[urn] = Post(urn, body, shown, hashtags)
        if self.lose_next_create:
            self.lose_next_create = False
            return Reply(500, SERVER_ERROR)
        return Reply(201, None, {"x-restli-id": urn, "x-linkedin-id": urn})

    def read_back(self, post: Post) -> dict[str, Any]:
        """A post as the author finder returns it: hashtags as HashtagTemplates."""
        commentary = re.sub(
            r"(?:(?<=\s)|^)#([^\W_]+)", r"{hashtag|\\#|\1}", post.body["commentary"]
        )
        element = {
            "id": post.urn,
            "author": post.body["author"],
            "commentary": commentary,
            "visibility": post.body["visibility"],
            "lifecycleState": "PUBLISHED",
            "distribution": post.body["distribution"],
            "isReshareDisabledByAuthor": post.body.get("isReshareDisabledByAuthor", False),
        }
        if "content" in post.body:
            element["content"] = post.body["content"]
        return element

    def _find(self, request: Recorded) -> Reply:
        if request.headers.get("x-restli-method") != "FINDER" or request.query.get("q") != [
            "author"
        ]:
            return Reply(400, bad_request("Unknown finder"))
        if not self.can_read:
            return Reply(403, NO_READ_PERMISSION)
        author = request.query.get("author", [""])[0]
        count = int(request.query.get("count", ["10"])[0])
        posts = [p for p in reversed(self.posts.values()) if p.body["author"] == author]
        elements = [self.read_back(p) for p in posts[:count]]
        return Reply(
            200,
            {"paging": {"start": 0, "count": count, "links": []}, "elements": elements},
        )

    def add_post(self, author: str, commentary: str) -> str:
        """A post made elsewhere (on linkedin.com), which the API never saw created."""
        parsed = parse_little(commentary)
        assert parsed is not None
        urn = f"urn:li:share:{next(self._ids)}"
        body = {
            "author": author,
            "commentary": commentary,
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED"},
            "lifecycleState": "PUBLISHED",
        }
        self.posts[urn] = Post(urn, body, *parsed)
        return urn

    def post_text(self, urn: str) -> str:
        return self.posts[urn].shown


def _image_urns(body: dict[str, Any]) -> list[str]:
    content = body.get("content") or {}
    if "multiImage" in content:
        return [image["id"] for image in content["multiImage"].get("images") or ()]
    if "media" in content:
        return [content["media"]["id"]]
    return []
