"""The web dashboard served by `tuneyard serve` at `/` (the API stays under `/v1`).

Server-rendered Jinja2 pages with a little progressive enhancement: htmx for
the parts that refresh in place (the checkpoint table), uPlot for the curves,
and our own small script (static/app.js) for upload progress and the
playground's streamed answers. Third-party scripts come from npm at
`make setup` time into static/vendor/ (git-ignored), so every asset is served
by this server and the dashboard works offline.

Modules:
    session   the signed session cookie (an API key's id + a CSRF token)
    auth      the request dependencies: the signed-in user, CSRF checks
    views     read-side helpers: dataset previews, results files, curves
    pages     the GET pages
    actions   the state-changing POSTs (sign-in/out, upload, jobs, deployments,
              the playground's model calls)
"""
