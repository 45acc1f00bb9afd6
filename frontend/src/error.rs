//! What can go wrong between the dashboard and the server, or in the browser: one error type,
//! [`ClientError`], that keeps its cause. Its `Display` is the text the user reads.

use datavista_shared::http::ErrorBody;
use datavista_shared::SchemaError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not reach the server, or its answer did not come back.
    #[error("{0}")]
    Network(#[source] gloo_net::Error),
    /// The server refused, and said why in its error body.
    #[error("{message}")]
    Refused {
        status: u16,
        /// The server's error code (`ErrorBody::code`).
        code: String,
        message: String,
    },
    /// The server refused without an error body (a proxy, or a crash mid-answer).
    #[error("the server answered {status}")]
    Unexplained { status: u16 },
    /// The answer came but is not what the API promises.
    #[error("{0}")]
    Decode(#[source] gloo_net::Error),
    /// A schema the shared crate cannot use.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// A browser API threw; JavaScript values cannot leave the thread, so this keeps their text.
    #[error("{0}")]
    Browser(String),
    /// The upload stopped before the server answered (aborted, or the connection dropped).
    #[error("the upload was interrupted")]
    Interrupted,
    /// A dropped `.json` file larger than a schema may be.
    #[error("{name} is too large for a schema")]
    TooLargeForSchema { name: String },
    /// A dropped `.json` file that is not text.
    #[error("{name} is not UTF-8 text")]
    NotText {
        name: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
}

impl ClientError {
    /// A refusal, from the status and the body the server sent with it (if it could be read).
    pub fn refused(status: u16, body: Option<ErrorBody>) -> ClientError {
        match body {
            Some(ErrorBody { code, message }) => ClientError::Refused {
                status,
                code,
                message,
            },
            None => ClientError::Unexplained { status },
        }
    }

    /// An exception thrown by a browser API.
    pub fn browser(error: wasm_bindgen::JsValue) -> ClientError {
        ClientError::Browser(format!("{error:?}"))
    }
}
