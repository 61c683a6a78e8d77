//! The frame around every hosted page, and the standard error page's body.

use maud::{DOCTYPE, Markup, html};

use crate::http::pages::CSS_PATH;

/// The whole document: the organization's name above the page's title and body.
pub fn document(org_name: &str, title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (org_name) }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body {
                main {
                    p.org { (org_name) }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The body of the standard error page.
pub fn error(message: &str) -> Markup {
    html! {
        p { (message) }
        p.muted { "You can close this page and start again from the application." }
    }
}
