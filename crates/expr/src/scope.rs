//! The values an expression can see: `.` and the named variables.

use jaq_core::ValT;
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

/// The variables bound in every expression, in the order the compiler numbers them.
pub const VARIABLES: [&str; 7] = [
    "$trigger",
    "$steps",
    "$config",
    "$secrets",
    "$execution",
    "$item",
    "$index",
];

/// Everything one execution's expressions read: the trigger data as `.`, and the
/// variables of [`VARIABLES`]. Step outputs are added as the steps finish.
#[derive(Clone)]
pub struct Scope {
    input: Val,
    trigger: Val,
    config: Val,
    secrets: Val,
    execution: Val,
    item: Val,
    index: Val,
    steps: Vec<(String, Val)>,
    steps_object: Val,
}

impl Scope {
    /// A scope for one execution, before any step has run.
    pub fn new(
        input: &Value,
        trigger: &Value,
        config: &Value,
        secrets: &Value,
        execution: &Value,
    ) -> Self {
        Self {
            input: to_val(input),
            trigger: to_val(trigger),
            config: to_val(config),
            secrets: to_val(secrets),
            execution: to_val(execution),
            item: Val::Null,
            index: Val::Null,
            steps: Vec::new(),
            steps_object: object(Vec::new()),
        }
    }

    /// Records a finished step's output as `$steps.<id>`, replacing an earlier one of that id.
    pub fn set_step(&mut self, id: &str, output: &Value) {
        let value = to_val(output);
        match self.steps.iter_mut().find(|(name, _)| name == id) {
            Some(entry) => entry.1 = value.clone(),
            None => self.steps.push((id.to_owned(), value.clone())),
        }
        // Into the object in place (copied only when a clone of this scope shares it):
        // building it again at each step made a flow of n steps cost n² (bench/README.md,
        // step overhead).
        match &mut self.steps_object {
            Val::Obj(map) => {
                jaq_json::Rc::make_mut(map).insert(Val::from(id.to_owned()), value);
            }
            _ => self.steps_object = object(self.steps.clone()),
        }
    }

    /// The same scope with another `.`.
    pub fn with_input(&self, input: &Value) -> Self {
        Self {
            input: to_val(input),
            ..self.clone()
        }
    }

    /// Adds the steps `other` has and this scope has not (what the branches of a
    /// `parallel` step ran).
    pub fn absorb(&mut self, other: &Scope) {
        let before = self.steps.len();
        for (id, value) in &other.steps {
            if !self.steps.iter().any(|(name, _)| name == id) {
                self.steps.push((id.clone(), value.clone()));
            }
        }
        if self.steps.len() != before {
            self.steps_object = object(self.steps.clone());
        }
    }

    /// Binds `$item` and `$index`, for the steps of one `for_each` item.
    pub fn set_item(&mut self, item: &Value, index: usize) {
        self.item = to_val(item);
        self.index = Val::from(index);
    }

    /// The output of the step that finished last, `null` before any.
    pub fn last_output(&self) -> Value {
        self.steps
            .last()
            .and_then(|(_, value)| crate::program::to_json(value).ok())
            .unwrap_or(Value::Null)
    }

    /// Whether a step of that id has finished.
    pub fn has_step(&self, id: &str) -> bool {
        self.steps.iter().any(|(name, _)| name == id)
    }

    pub(crate) fn input(&self) -> Val {
        self.input.clone()
    }

    pub(crate) fn variables(&self) -> [Val; VARIABLES.len()] {
        [
            self.trigger.clone(),
            self.steps_object.clone(),
            self.config.clone(),
            self.secrets.clone(),
            self.execution.clone(),
            self.item.clone(),
            self.index.clone(),
        ]
    }
}

/// A JSON value as jaq's value; every JSON value has one.
pub(crate) fn to_val(value: &Value) -> Val {
    Val::deserialize(value).unwrap_or(Val::Null)
}

fn object(fields: Vec<(String, Val)>) -> Val {
    Val::from_map(
        fields
            .into_iter()
            .map(|(key, value)| (Val::from(key), value)),
    )
    .unwrap_or(Val::Null)
}
