//! Schedules: cron prompts a workspace's agent receives, their history and health. The firing
//! loop itself is `crate::background::scheduler`; it delivers through [`dispatch::ScheduleDispatch`].

pub mod cron;
pub mod dispatch;
pub mod fire;
pub mod handlers;
pub mod health;
