use super::*;
use crate::{AlertCondition, StepKind};

/// Writes `source` as `shop.yaml` in a new folder and loads it.
fn load_source(source: &str) -> Result<Project, Vec<String>> {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("shop.yaml");
    std::fs::write(&file, source).unwrap();
    load(&[file]).map_err(|problems| {
        problems
            .0
            .iter()
            .map(|problem| format!("{}:{}: {}", problem.line, problem.column, problem.message))
            .collect()
    })
}

const VALID: &str = r#"name: shop-orders
description: Receive shop orders and forward them.
config:
  erp_url: { default: "http://127.0.0.1:9001", description: ERP base URL }
flows:
  receive-order:
    trigger: { webhook: { methods: [POST] } }
    steps:
      - id: order
        transform: '{id: .id, total: ([.lines[] | .qty * .price] | add)}'
      - id: forward
        http:
          method: POST
          url: "${{ $config.erp_url }}/orders"
          headers: { X-Source: switchboard }
          json: '$steps.order'
          timeout: 10s
      - id: note
        log: "forwarded ${{ $steps.order.id }} -> ${{ $steps.forward.status }}"
"#;

#[test]
fn a_valid_file_compiles() {
    let project = load_source(VALID).unwrap();
    let flow = project.flow("shop-orders", "receive-order").unwrap();
    assert_eq!(
        flow.steps
            .iter()
            .map(|step| step.kind.name())
            .collect::<Vec<_>>(),
        ["transform", "http", "log"]
    );
    let StepKind::Http(http) = &flow.steps[1].kind else {
        panic!("not http")
    };
    assert_eq!(http.timeout, Duration::from_secs(10));
    assert_eq!(
        project.integrations["shop-orders"].config_values()["erp_url"],
        "http://127.0.0.1:9001"
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let problems = load_source("name: a\nflows: [\n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("3:1: ") || problems[0].starts_with("2:"),
        "{problems:?}"
    );
}

#[test]
fn unknown_fields_get_a_suggestion() {
    let source = VALID.replace("transform: '{id", "tranform: '{id");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("10:9: "), "{problems:?}");
    assert!(
        problems[0].contains("unknown field `tranform`"),
        "{problems:?}"
    );
    assert!(
        problems[0].ends_with("did you mean `transform`?"),
        "{problems:?}"
    );
}

#[test]
fn wrong_types_are_reported() {
    let source = VALID.replace("timeout: 10s", "timeout: [10]");
    let problems = load_source(&source).unwrap_err();
    assert!(problems[0].starts_with("17:20: "), "{problems:?}");
    let source = VALID.replace("timeout: 10s", "timeout: ten");
    let problems = load_source(&source).unwrap_err();
    assert!(
        problems[0].contains("`ten` is not a duration"),
        "{problems:?}"
    );
}

#[test]
fn jq_errors_point_inside_the_string() {
    let source = VALID.replace("total: ([.lines[]", "total: ([.lines[] |");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("10:51: transform: jq syntax error"),
        "{problems:?}"
    );
}

#[test]
fn template_errors_point_inside_the_string() {
    let source = VALID.replace("${{ $config.erp_url }}", "${{ $config.erp_url | }}");
    let problems = load_source(&source).unwrap_err();
    assert!(
        problems[0].starts_with("14:39: url: jq syntax error"),
        "{problems:?}"
    );
}

#[test]
fn step_ids_and_references_are_checked() {
    let source = VALID.replace("id: note", "id: order");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(
        problems,
        [
            "18:13: the step id `order` is used twice (first at line 9); ids are unique in the whole flow"
        ]
    );

    let source = VALID.replace("json: '$steps.order'", "json: '$steps.ordr'");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(
        problems,
        ["16:18: unknown step `ordr` in `$steps.ordr`; did you mean `order`?"]
    );

    let source = VALID.replace("json: '$steps.order'", "json: '$steps.note'");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(
        problems,
        ["16:18: `$steps.note` is read before the step `note` runs (it comes later in the flow)"]
    );
}

const BLOCKS: &str = r#"name: blocks
flows:
  route:
    trigger: { event: { topic: "order.*", filter: .total > 0 } }
    steps:
      - id: big
        if:
          condition: .total > 100
          then:
            - { id: approve, transform: '{approved: true}' }
          else:
            - { id: review, transform: '{approved: false}' }
      - id: lines
        for_each:
          items: .lines
          concurrency: 4
          steps:
            - { id: price, transform: '$item.qty * $item.price' }
            - { id: line, transform: '{index: $index, price: $steps.price}' }
      - id: kind
        switch:
          value: .kind
          cases:
            gift: [{ id: wrap, log: "wrap ${{ $steps.lines | length }}" }]
          default: [{ id: plain, log: plain }]
      - id: both
        parallel:
          branches:
            a: [{ id: pa, transform: '$steps.approve' }]
            b: [{ id: pb, transform: '$steps.big' }]
      - id: cursor
        state: { set: last_order, value: .id, scope: integration }
      - id: announce
        when: '$steps.approve != null'
        publish: { topic: order.approved, key: .id }
      - { id: nap, sleep: 10m }
      - { id: later, sleep: { until: '.due' } }
      - { id: stop, fail: { message: '"order \(.id) is odd"', code: '"odd"' } }
"#;

#[test]
fn blocks_compile_with_their_inner_steps() {
    let project = load_source(BLOCKS).unwrap();
    let flow = project.flow("blocks", "route").unwrap();
    assert_eq!(flow.trigger.kind(), "event");
    let kinds: Vec<&str> = flow.steps.iter().map(|step| step.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "if", "for_each", "switch", "parallel", "state", "publish", "sleep", "sleep", "fail"
        ]
    );
    let StepKind::ForEach(lines) = &flow.steps[1].kind else {
        panic!("not a for_each");
    };
    assert_eq!(lines.concurrency, 4);
    assert_eq!(lines.steps.len(), 2);
    assert!(flow.steps[5].when.is_some());
}

#[test]
fn block_references_are_checked() {
    let source = BLOCKS.replace("id: pa,", "id: approve,");
    assert_eq!(
        load_source(&source).unwrap_err(),
        [
            "29:23: the step id `approve` is used twice (first at line 10); ids are unique in the whole flow"
        ]
    );
    let source = BLOCKS.replace("value: .id, scope", "value: $steps.price, scope");
    let problems = load_source(&source).unwrap_err();
    assert!(
        problems[0].contains("`$steps.price` is the output of a step inside a `for_each`"),
        "{problems:?}"
    );
    let source = BLOCKS.replace("value: .id, scope", "value: $item, scope");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["32:42: `$item` is only bound inside the steps of a `for_each`"]
    );
    let source = BLOCKS.replace(
        "{ set: last_order, value: .id, scope: integration }",
        "{ get: a, set: b }",
    );
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["32:16: a `state` step does one of `get`, `set` and `delete`, each naming a key"]
    );
    let source = BLOCKS.replace("topic: order.approved", "topic: order approved");
    assert_eq!(
        load_source(&source).unwrap_err(),
        [
            "35:27: `order approved` is not a topic: a topic is 1 to 256 letters, digits, `.`, `_`, `-` or `:`"
        ]
    );
    let source = BLOCKS.replace("concurrency: 4", "concurrency: 0");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["16:24: `concurrency` must be from 1 to 1000"]
    );
}

#[test]
fn flows_need_a_trigger_and_steps() {
    let source = "name: a\nflows:\n  one:\n    steps: [{id: x, log: hi}]\n  two:\n    trigger: { webhook: {} }\n    steps: []\n";
    let problems = load_source(source).unwrap_err();
    assert_eq!(
        problems,
        [
            "4:5: the flow `one` has no trigger",
            "7:12: the flow `two` has no steps"
        ]
    );
}

#[test]
fn duplicate_integration_names_are_refused() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("a.yaml"), VALID).unwrap();
    std::fs::write(folder.path().join("b.yaml"), VALID).unwrap();
    let problems = load(&[folder.path().to_owned()]).unwrap_err();
    assert_eq!(problems.0.len(), 1);
    assert!(problems.0[0].file.ends_with("b.yaml"));
    assert!(
        problems.0[0].message.contains("already used by"),
        "{problems}"
    );
    assert_eq!((problems.0[0].line, problems.0[0].column), (1, 7));
}

#[test]
fn block_scalars_map_positions_to_their_lines() {
    let source = "name: a\nflows:\n  f:\n    trigger: { webhook: {} }\n    steps:\n      - id: t\n        transform: |\n          {a: 1,\n           b: (.x | }\n";
    let problems = load_source(source).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("9:"), "{problems:?}");
}

const ALERTS: &str = r#"name: shop
flows:
  orders:
    trigger: { webhook: {} }
    steps:
      - id: echo
        transform: .
  page:
    trigger: { alert: {} }
    steps:
      - id: note
        log: "${{ .summary }}"
alerts:
  failing:
    flow: orders
    when: { failures: { count: 3, within: 10m } }
    notify:
      - webhook: "https://alerts.example/hook"
        headers: { Authorization: "Bearer ${{ $secrets.ALERT_TOKEN }}" }
      - flow: page
  slow:
    when: { p95_duration: { above: 30s, within: 5m } }
    notify: [{ flow: page }]
"#;

#[test]
fn alerts_compile_with_a_flow_for_each_webhook_target() {
    let project = load_source(ALERTS).unwrap();
    let shop = &project.integrations["shop"];
    let names: Vec<_> = shop
        .alerts
        .iter()
        .map(|alert| alert.name.as_str())
        .collect();
    assert_eq!(names, ["failing", "slow"]);
    let failing = &shop.alerts[0];
    assert_eq!(
        failing.condition,
        AlertCondition::Failures {
            count: 3,
            within: Duration::from_secs(600)
        }
    );
    assert_eq!(failing.notify, ["alert.failing.webhook.0", "page"]);
    let made = &shop.flows["alert.failing.webhook.0"];
    assert!(matches!(made.trigger, Trigger::Alert));
    let StepKind::Http(post) = &made.steps[0].kind else {
        panic!("not an http step")
    };
    assert_eq!(post.method, "POST");
    assert_eq!(shop.alerts[1].flow, None);
}

#[test]
fn alert_mistakes_are_located() {
    let source = ALERTS
        .replace("flow: orders\n", "flow: oders\n")
        .replace(
            "{ failures: { count: 3, within: 10m } }",
            "{ failures: { count: 3, within: 10m }, queue_age: { above: 1m } }",
        )
        .replace("notify: [{ flow: page }]", "notify: [{ flow: orders }]");
    let problems = load_source(&source).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].starts_with("15:11: the alert watches `oders`"),
        "{problems:#?}"
    );
    assert!(
        problems[0].ends_with("did you mean `orders`?"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("16:11: `when` takes exactly one condition"),
        "{problems:#?}"
    );
    assert!(
        problems[2].contains("the flow `orders` is not started by alerts"),
        "{problems:#?}"
    );
}

#[test]
fn retry_policies_take_the_http_defaults_and_are_checked() {
    let source = VALID.replace(
        "          timeout: 10s\n",
        "          timeout: 10s\n        retry: { attempts: 8, max: 1h }\n",
    );
    let project = load_source(&source).unwrap();
    let flow = &project.integrations["shop-orders"].flows["receive-order"];
    let forward = &flow.steps[1];
    let policy = flow.retry_policy(forward);
    assert_eq!(policy.attempts, 8);
    assert_eq!(policy.max, Duration::from_secs(3600));
    assert_eq!(
        policy.initial,
        Duration::from_secs(1),
        "from the http default"
    );
    assert_eq!(
        flow.retry_policy(&flow.steps[0]).attempts,
        1,
        "a transform runs once"
    );

    let broken = VALID.replace(
        "          timeout: 10s\n",
        "          timeout: 10s\n        retry: { attempts: 0, backoff: linear }\n",
    );
    let problems = load_source(&broken).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].ends_with("`attempts` is 0; it must be from 1 to 100"),
        "{problems:#?}"
    );
    assert!(
        problems[1].ends_with("`backoff` is `linear`; it must be exponential or fixed"),
        "{problems:#?}"
    );
}

#[test]
fn on_error_names_a_flow_started_by_errors() {
    let source = format!(
        "{VALID}    on_error: notify\n  notify:\n    trigger: {{ webhook: {{}} }}\n    steps:\n      - id: note\n        log: failed\n"
    );
    let problems = load_source(&source).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("`on_error` names `notify`, which is not started by errors"),
        "{problems:#?}"
    );
    let fixed = source.replace(
        "trigger: { webhook: {} }\n    steps:\n      - id: note",
        "trigger: { error: {} }\n    steps:\n      - id: note",
    );
    let project = load_source(&fixed).unwrap();
    let flow = &project.integrations["shop-orders"].flows["receive-order"];
    assert_eq!(flow.on_error.as_deref(), Some("notify"));
}

#[test]
fn rates_read_as_a_count_per_a_period() {
    assert_eq!(parse_rate("10/s"), Some((10, Duration::from_secs(1))));
    assert_eq!(parse_rate("100/m"), Some((100, Duration::from_secs(60))));
    assert_eq!(parse_rate("5/10s"), Some((5, Duration::from_secs(10))));
    assert_eq!(parse_rate("0/s"), None);
    assert_eq!(parse_rate("ten/s"), None);
    assert_eq!(parse_rate("10"), None);
}

#[test]
fn verify_settings_are_checked() {
    let source = VALID.replace(
        "trigger: { webhook: { methods: [POST] } }",
        "trigger: { webhook: { methods: [POST], verify: { scheme: gitlab, secret: x } } }",
    );
    let problems = load_source(&source).unwrap_err();
    assert!(
        problems[0].contains(
            "`gitlab` is not a verify scheme; use one of standard-webhooks, svix, github"
        ),
        "{problems:#?}"
    );
    let source = VALID.replace(
        "trigger: { webhook: { methods: [POST] } }",
        "trigger: { webhook: { methods: [POST], verify: { scheme: github, header: X-Sig } } }",
    );
    let problems = load_source(&source).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].contains("go with `scheme: hmac`"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("`verify` needs a `secret`"),
        "{problems:#?}"
    );
}

const CALLS: &str = r#"name: shop
flows:
  order:
    trigger: { webhook: {} }
    steps:
      - id: priced
        call: { flow: price, input: '{lines: .lines}' }
      - id: answer
        respond: { status: 201, headers: { x-id: '${{ .id }}' }, body: '$steps.priced' }
  price:
    trigger: { call: {} }
    steps: [{ id: total, transform: '.lines | length' }]
  quote:
    trigger: { invoke: { wait: 2s, callback: { secret: '${{ $secrets.CB }}' } } }
    steps: [{ id: out, transform: '.' }]
  router:
    trigger: { webhook: { dispatch: '.type', mode: sync } }
"#;

#[test]
fn calls_invokes_and_dispatch_compile() {
    let project = load_source(CALLS).unwrap();
    let order = project.flow("shop", "order").unwrap();
    let StepKind::Call(call) = &order.steps[0].kind else {
        panic!("not a call: {:?}", order.steps[0].kind);
    };
    assert!(call.wait);
    assert!(
        matches!(&call.target, crate::CallTarget::Flow { integration, flow } if integration == "shop" && flow == "price")
    );
    let quote = project.flow("shop", "quote").unwrap();
    let sync = quote.trigger.request().unwrap().sync.as_ref().unwrap();
    assert_eq!(sync.wait, Duration::from_secs(2));
    assert!(sync.callback_secret.is_some());
    let router = project.flow("shop", "router").unwrap();
    assert_eq!(router.steps.len(), 1);
    assert_eq!(router.steps[0].kind.name(), "dispatch");
}

#[test]
fn calls_invokes_and_dispatch_are_checked() {
    let source = CALLS.replace("flow: price,", "flow: prices,");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["7:23: `call` names `shop/prices`, which is not a flow of the project"]
    );
    let source = CALLS.replace("flow: price,", "flow: other/price,");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["7:23: `call` names `other/price`, which is not a flow of the project"]
    );
    let source = CALLS.replace("status: 201", "status: 99");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["9:28: `status` is 99; an answer's status is 200 to 599"]
    );
    let source = CALLS.replace("mode: sync", "mode: later");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["17:52: `mode` is `later`; it must be `async` (the default) or `sync`"]
    );
    let source = CALLS.replace("wait: 2s", "wait: 1h");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["14:14: `wait` is 1h; a caller waits at most 5m (past it, answer 202 and call back)"]
    );
    let source = CALLS.replace(
        "mode: sync } }\n",
        "mode: sync } }\n    steps: [{ id: x, log: hi }]\n",
    );
    assert_eq!(
        load_source(&source).unwrap_err(),
        [
            "18:12: the flow `router` dispatches each request to another flow, so it has no steps of its own"
        ]
    );
    let source = CALLS.replace("{ webhook: {} }", "{ webhook: { wait: 3s } }");
    assert_eq!(
        load_source(&source).unwrap_err(),
        ["4:14: `wait` and `callback` go with `mode: sync`: an asynchronous hook answers at once"]
    );
}

#[test]
fn deploy_triggers_name_their_events() {
    let source = "name: a\nflows:\n  register:\n    trigger: { deploy: { on: [deployed, removed] } }\n    steps: [{ id: x, log: hi }]\n  all:\n    trigger: { deploy: {} }\n    steps: [{ id: y, log: hi }]\n";
    let project = load_source(source).unwrap();
    let integration = &project.integrations["a"];
    let names = |event| {
        integration
            .deploy_flows(event)
            .map(|flow| flow.name.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(crate::DeployEvent::Deployed), ["all", "register"]);
    assert_eq!(names(crate::DeployEvent::Updated), ["all"]);
    let problems = load_source(&source.replace("removed]", "gone]")).unwrap_err();
    assert_eq!(
        problems,
        ["4:41: `gone` is not a deploy event: use deployed, updated or removed"]
    );
}

#[test]
fn schedule_triggers_compile_and_their_mistakes_are_placed() {
    let source = "name: a\nflows:\n  nightly:\n    trigger: { schedule: { cron: \"0 2 * * *\", timezone: Europe/Berlin, catch_up: all, max_catch_up: 5, overlap: queue } }\n    steps: [{ id: x, log: hi }]\n  often:\n    trigger: { schedule: { every: 15m } }\n    steps: [{ id: y, log: hi }]\n";
    let project = load_source(source).unwrap();
    let flows = &project.integrations["a"].flows;
    let nightly = flows["nightly"].trigger.schedule().unwrap();
    assert_eq!(nightly.timing.describe(), "cron 0 2 * * * Europe/Berlin");
    assert_eq!(nightly.catch_up, crate::CatchUp::All);
    assert_eq!(nightly.max_catch_up, 5);
    assert_eq!(nightly.overlap, crate::Overlap::Queue);
    let often = flows["often"].trigger.schedule().unwrap();
    assert_eq!(often.timing.describe(), "every 15m");
    assert_eq!(often.catch_up, crate::CatchUp::Latest);
    assert_eq!(often.overlap, crate::Overlap::Skip);

    let problems = |from: &str, to: &str| load_source(&source.replace(from, to)).unwrap_err();
    assert_eq!(
        problems("0 2 * * *", "0 26 * * *"),
        [
            "4:34: `0 26 * * *` is not a cron pattern: its hour field `26` is wrong (Component error: Number out of bounds)"
        ]
    );
    assert_eq!(
        problems("Europe/Berlin", "Europe/Atlantis"),
        [
            "4:57: `Europe/Atlantis` is not a time zone of the IANA database, such as `UTC` or `Europe/Berlin`"
        ]
    );
    assert_eq!(
        problems("catch_up: all", "catch_up: some"),
        ["4:82: `catch_up` is `some`; it must be one of none, latest, all"]
    );
    assert_eq!(
        problems("overlap: queue", "overlap: wait"),
        ["4:113: `overlap` is `wait`; it must be one of skip, queue, allow"]
    );
    assert_eq!(
        problems("every: 15m", "every: 15m, cron: \"* * * * *\""),
        ["7:35: a schedule has `cron` or `every`, not both"]
    );
    assert_eq!(
        problems("{ every: 15m }", "{ overlap: allow }"),
        [
            "7:14: the schedule says neither when nor how often: write `cron: \"0 2 * * *\"` or `every: 15m`"
        ]
    );
    assert_eq!(
        problems("every: 15m", "every: 100ms"),
        ["7:35: `every` must be at least 1s"]
    );
}

#[test]
fn pagination_and_a_publish_state_are_checked() {
    let source = "name: a\nflows:\n  poll:\n    trigger: { call: {} }\n    steps:\n      - id: fetch\n        http: { url: \"https://api.example.com/x\", paginate: { next: '.body.next', max_pages: 5 } }\n      - id: emit\n        publish: { topic: x.changed, state: { set: since, value: '.' } }\n";
    let project = load_source(source).unwrap();
    let steps = &project.integrations["a"].flows["poll"].steps;
    let crate::StepKind::Http(http) = &steps[0].kind else {
        panic!("not http")
    };
    assert_eq!(http.paginate.as_ref().unwrap().max_pages, 5);
    let crate::StepKind::Publish(publish) = &steps[1].kind else {
        panic!("not publish")
    };
    assert!(publish.state.is_some());

    let problems = |from: &str, to: &str| load_source(&source.replace(from, to)).unwrap_err();
    assert_eq!(
        problems("max_pages: 5", "max_pages: 0"),
        ["7:94: `max_pages` must be from 1 to 10000"]
    );
    let broken = problems("'.body.next'", "'.body.next |'");
    assert_eq!(
        broken,
        ["7:82: next: jq syntax error: expected term, found the end of the program"]
    );
    assert_eq!(
        problems("set: since, value: '.'", "get: since"),
        ["9:45: a publish's `state` is a `set` or a `delete`; read state with a `state` step"]
    );
}

#[test]
fn files_triggers_and_steps_are_checked() {
    let source = "name: a\nflows:\n  inbox:\n    trigger: { files: { path: inbox, pattern: '*.csv', every: 5s, failed_to: failed } }\n    steps:\n      - id: rows\n        files: { read: '${{ .path }}', format: csv, csv: { delimiter: ';' } }\n";
    let project = load_source(source).unwrap();
    let flow = &project.integrations["a"].flows["inbox"];
    let crate::Trigger::Files(files) = &flow.trigger else {
        panic!("not files")
    };
    assert_eq!(
        files.after,
        crate::AfterFile::Move(String::from("processed"))
    );
    assert_eq!(files.failed_to.as_deref(), Some("failed"));
    let crate::StepKind::Files(step) = &flow.steps[0].kind else {
        panic!("not a files step")
    };
    assert_eq!(step.csv.delimiter, b';');

    let problems = |from: &str, to: &str| load_source(&source.replace(from, to)).unwrap_err();
    assert_eq!(
        problems("every: 5s", "every: 5s, after: archive"),
        ["4:74: `after` is `archive`; it must be move or delete"]
    );
    assert_eq!(
        problems("path: inbox,", "path: inbox, move_to: inbox,"),
        ["4:47: `move_to` must be another folder than `path`"]
    );
    assert_eq!(
        problems("format: csv", "format: xlsx"),
        ["7:48: `format` is `xlsx`; it must be one of csv, json, ndjson, xml, text"]
    );
    assert_eq!(
        problems("delimiter: ';'", "delimiter: ';;'"),
        ["7:71: `delimiter` is one ASCII character (`\\t` for a tab), not `;;`"]
    );
    assert_eq!(
        problems("read: '${{ .path }}',", "read: '${{ .path }}', to: x,"),
        ["7:44: `to` goes with `move`"]
    );
    assert_eq!(
        problems("read: '${{ .path }}'", "list: in, delete: x"),
        [
            "7:16: a `files` step does one of `read`, `write`, `list`, `move` and `delete`, each naming a path"
        ]
    );
}
