//! The bodies of decisions, one parse for a release, a batch and a bypass alike.

use crate::domain::Comment;
use crate::error::ApiError;
use crate::state::AppState;
use serde::Deserialize;

/// `{"comment"}`, optional: an approval (or an acknowledgement) may say why.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OptionalComment {
    /// Why, if you like: the comment rules without the minimum length.
    #[serde(default)]
    comment: Option<String>,
}

impl OptionalComment {
    /// The comment when one was given: the comment rules minus the minimum length.
    pub(super) fn parse(self) -> Result<Option<Comment>, ApiError> {
        self.comment
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| Comment::parse(c, 1))
            .transpose()
            .map_err(Into::into)
    }
}

/// `{"comment"}`, required: a rejection says why, at the policy's minimum length.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RequiredComment {
    /// Why: at least `policy.min_comment_len` visible characters.
    #[schema(required, value_type = String)]
    comment: Option<String>,
}

impl RequiredComment {
    pub(super) fn parse(self, state: &AppState) -> Result<Comment, ApiError> {
        let comment = self.comment.ok_or_else(|| {
            ApiError::unprocessable("comment_required", "a rejection needs a comment: send {\"comment\": \"<why>\"}")
        })?;
        Ok(Comment::parse(&comment, state.policy().min_comment_len() as usize)?)
    }
}

/// Cancel takes no fields; a body, if sent, must be an empty JSON object like any other.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoFields {}
