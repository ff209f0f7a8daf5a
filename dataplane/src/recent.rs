//! The versions that answered the latest request ids, for feedback that arrives later
//! (as `routing/recent.py`): two generations, so at least the last `capacity` ids are
//! held and at most twice as many.

use std::collections::HashMap;
use std::rc::Rc;

pub struct RecentVersions {
    capacity: usize,
    current: HashMap<String, Rc<str>>,
    previous: HashMap<String, Rc<str>>,
}

impl RecentVersions {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), current: HashMap::new(), previous: HashMap::new() }
    }

    pub fn add(&mut self, request_id: String, version: Rc<str>) {
        if self.current.len() >= self.capacity {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(request_id, version);
    }

    pub fn get(&self, request_id: &str) -> Option<Rc<str>> {
        self.current.get(request_id).or_else(|| self.previous.get(request_id)).cloned()
    }
}
