"""Jobs of the review center: moderation of reviews, follow-ups, replies and feedback."""
from services import review
from workers import job


@job("moderate_review")
def moderate(review_id: int) -> None:
    """Decide one pending item (idempotent: a decided item is left as it is)."""
    review.moderate(review_id)


@job("moderate_feedback")
def moderate_feedback(feedback_id: int) -> None:
    review.moderate_feedback(feedback_id)
