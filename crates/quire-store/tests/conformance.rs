//! One conformance suite, run against SQLite and PostgreSQL alike. Each test gets its own
//! database (a temporary SQLite file, or a PostgreSQL schema), so they run in parallel.

use std::collections::HashSet;

use quire_core::{
    DocumentKind, DocumentPatch, DocumentQuery, Error, EventFilter, Limits, NewDocument,
    NewWorkspace, Principal, WorkspacePatch, WorkspaceQuery,
};
use quire_store::StoreOptions;
use quire_store::testing::{Backend, TestStore};
use serde_json::json;

quire_store::for_each_backend!(
    workspace_lifecycle,
    workspace_slugs,
    document_lifecycle,
    metadata_is_merge_patched,
    pagination_visits_every_row_once_in_order,
    filters_by_kind_and_title,
    deleted_workspace_hides_its_documents,
    count_limits_hold,
    every_change_writes_one_event_in_order,
    concurrent_updates_all_land,
    failed_writes_leave_no_event,
    migrations_are_idempotent,
    a_tail_follows_the_outbox_live,
    consumer_offsets_only_move_forward,
);

const ME: Principal = Principal::Anonymous;

async fn open(b: Backend) -> TestStore {
    b.open(StoreOptions::default()).await
}

fn ws(name: &str) -> NewWorkspace {
    NewWorkspace {
        name: name.into(),
        slug: None,
        description: None,
    }
}

fn doc(kind: DocumentKind, title: &str) -> NewDocument {
    NewDocument {
        kind,
        title: title.into(),
        metadata: None,
    }
}

async fn workspace_lifecycle(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let created = s
        .create_workspace(
            &ME,
            NewWorkspace {
                name: " Product Team ".into(),
                slug: None,
                description: Some("PRDs".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            created.name.as_str(),
            created.slug.as_str(),
            created.revision
        ),
        ("Product Team", "product-team", 1)
    );
    assert!(created.id.starts_with("ws_"));
    assert_eq!(
        s.get_workspace(&ME, "product-team", false).await.unwrap(),
        created
    );
    assert_eq!(
        s.get_workspace(&ME, &created.id, false).await.unwrap(),
        created
    );

    let patch = WorkspacePatch {
        description: Some("Specs".into()),
        ..Default::default()
    };
    let updated = s
        .update_workspace(&ME, &created.id, patch.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.revision),
        ("Specs", 2)
    );
    assert!(updated.updated_at >= created.updated_at);
    // The same patch again changes nothing and makes no revision.
    assert_eq!(
        s.update_workspace(&ME, &created.id, patch, None)
            .await
            .unwrap()
            .revision,
        2
    );
    // A stale revision is refused and says what is current.
    let stale = s
        .update_workspace(
            &ME,
            &created.id,
            WorkspacePatch {
                name: Some("X".into()),
                ..Default::default()
            },
            Some(1),
        )
        .await;
    assert_eq!(
        stale.unwrap_err(),
        Error::PreconditionFailed {
            expected: 1,
            current: 2
        }
    );
    assert_eq!(
        s.delete_workspace(&ME, &created.id, Some(1))
            .await
            .unwrap_err(),
        Error::PreconditionFailed {
            expected: 1,
            current: 2
        }
    );

    let deleted = s
        .delete_workspace(&ME, "product-team", Some(2))
        .await
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(matches!(
        s.get_workspace(&ME, &created.id, false).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        s.get_workspace(&ME, &created.id, true)
            .await
            .unwrap()
            .deleted_at
            .is_some()
    );
    assert!(matches!(
        s.delete_workspace(&ME, &created.id, None).await,
        Err(Error::NotFound { .. })
    ));
    let live = s.list_workspaces(&ME, &wq(None, false)).await.unwrap();
    assert!(live.items.is_empty());
    let trash = s.list_workspaces(&ME, &wq(None, true)).await.unwrap();
    assert_eq!(trash.items.len(), 1);

    let restored = s.restore_workspace(&ME, &created.id).await.unwrap();
    assert!(restored.deleted_at.is_none());
    assert_eq!(restored.revision, 4);
    // Restoring what is live returns it unchanged.
    assert_eq!(
        s.restore_workspace(&ME, &created.id)
            .await
            .unwrap()
            .revision,
        4
    );
    assert!(matches!(
        s.restore_workspace(&ME, "nope").await,
        Err(Error::NotFound { .. })
    ));
}

fn wq(q: Option<&str>, deleted: bool) -> WorkspaceQuery {
    WorkspaceQuery::new(
        q.map(Into::into),
        None,
        None,
        None,
        deleted,
        &Limits::default(),
    )
    .unwrap()
}

async fn workspace_slugs(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let a = s.create_workspace(&ME, ws("Design")).await.unwrap();
    let b2 = s.create_workspace(&ME, ws("Design")).await.unwrap();
    assert_eq!(a.slug, "design");
    assert!(
        b2.slug.starts_with("design-") && b2.slug.len() == "design-".len() + 6,
        "{}",
        b2.slug
    );
    let taken = s
        .create_workspace(
            &ME,
            NewWorkspace {
                name: "Other".into(),
                slug: Some("design".into()),
                description: None,
            },
        )
        .await;
    assert!(matches!(taken, Err(Error::Conflict(m)) if m.contains("'design' is taken")));
    let renamed = s
        .update_workspace(
            &ME,
            &b2.id,
            WorkspacePatch {
                slug: Some("design".into()),
                ..Default::default()
            },
            None,
        )
        .await;
    assert!(matches!(renamed, Err(Error::Conflict(_))), "{renamed:?}");
    let ok = s
        .update_workspace(
            &ME,
            &b2.id,
            WorkspacePatch {
                slug: Some("design-2".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        s.get_workspace(&ME, "design-2", false).await.unwrap().id,
        ok.id
    );
}

async fn document_lifecycle(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Boards")).await.unwrap();
    let d = s
        .create_document(
            &ME,
            &w.slug,
            NewDocument {
                kind: DocumentKind::BoardConfig,
                title: "Orange Pi 5".into(),
                metadata: Some(json!({"board":"orangepi5"})),
            },
        )
        .await
        .unwrap();
    assert!(d.id.starts_with("doc_"));
    assert_eq!(
        (d.workspace_id.as_str(), d.kind, d.revision),
        (w.id.as_str(), DocumentKind::BoardConfig, 1)
    );
    assert_eq!(d.metadata, json!({"board":"orangepi5"}));
    assert_eq!(
        s.get_workspace(&ME, &w.id, false)
            .await
            .unwrap()
            .document_count,
        1
    );
    assert_eq!(s.get_document(&ME, &d.id, false).await.unwrap(), d);

    let u = s
        .update_document(
            &ME,
            &d.id,
            DocumentPatch {
                title: Some("Orange Pi 5 Plus".into()),
                metadata: None,
            },
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!((u.title.as_str(), u.revision), ("Orange Pi 5 Plus", 2));
    let stale = s
        .update_document(
            &ME,
            &d.id,
            DocumentPatch {
                title: Some("x".into()),
                metadata: None,
            },
            Some(1),
        )
        .await;
    assert_eq!(
        stale.unwrap_err(),
        Error::PreconditionFailed {
            expected: 1,
            current: 2
        }
    );
    assert!(matches!(
        s.update_document(&ME, "doc_missing", DocumentPatch::default(), None)
            .await,
        Err(Error::NotFound { .. })
    ));

    let del = s.delete_document(&ME, &d.id, Some(2)).await.unwrap();
    assert!(del.deleted_at.is_some());
    assert!(matches!(
        s.get_document(&ME, &d.id, false).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.update_document(
            &ME,
            &d.id,
            DocumentPatch {
                title: Some("y".into()),
                metadata: None
            },
            None
        )
        .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.get_document(&ME, &d.id, true).await.unwrap().revision, 3);
    let restored = s.restore_document(&ME, &d.id).await.unwrap();
    assert_eq!((restored.deleted_at, restored.revision), (None, 4));
    assert_eq!(s.restore_document(&ME, &d.id).await.unwrap().revision, 4);
}

async fn metadata_is_merge_patched(b: Backend) {
    let t = b
        .open(StoreOptions {
            limits: Limits {
                max_metadata_bytes: 64,
                ..Limits::default()
            },
            ..Default::default()
        })
        .await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("M")).await.unwrap();
    let d = s
        .create_document(
            &ME,
            &w.id,
            NewDocument {
                kind: DocumentKind::Prd,
                title: "T".into(),
                metadata: Some(json!({"a":1,"b":{"c":2,"d":3}})),
            },
        )
        .await
        .unwrap();
    let u = s
        .update_document(
            &ME,
            &d.id,
            DocumentPatch {
                title: None,
                metadata: Some(json!({"a":null,"b":{"c":5},"e":"x"})),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(u.metadata, json!({"b":{"c":5,"d":3},"e":"x"}));
    let too_big = s
        .update_document(
            &ME,
            &d.id,
            DocumentPatch {
                title: None,
                metadata: Some(json!({"big":"x".repeat(80)})),
            },
            None,
        )
        .await;
    assert!(matches!(too_big, Err(Error::Invalid { field, .. }) if field == "metadata"));
    assert_eq!(
        s.get_document(&ME, &d.id, false).await.unwrap(),
        u,
        "a refused patch changes nothing"
    );
}

async fn pagination_visits_every_row_once_in_order(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Pages")).await.unwrap();
    // Duplicate titles make the id tie-breaker matter.
    let titles = [
        "delta", "alpha", "charlie", "alpha", "bravo", "echo", "charlie",
    ];
    let mut created = Vec::new();
    for title in titles {
        created.push(
            s.create_document(&ME, &w.id, doc(DocumentKind::Prd, title))
                .await
                .unwrap(),
        );
    }
    for sort in [
        "title",
        "-title",
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
    ] {
        let mut want = created.clone();
        want.sort_by(|a, b| {
            let ord = match sort.trim_start_matches('-') {
                "title" => a.title.cmp(&b.title),
                "created_at" => a.created_at.cmp(&b.created_at),
                _ => a.updated_at.cmp(&b.updated_at),
            }
            .then(a.id.cmp(&b.id));
            if sort.starts_with('-') {
                ord.reverse()
            } else {
                ord
            }
        });
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let q = DocumentQuery::new(
                None,
                None,
                Some(sort),
                Some(3),
                cursor.as_deref(),
                false,
                &Limits::default(),
            )
            .unwrap();
            let page = s.list_documents(&ME, &w.slug, &q).await.unwrap();
            pages += 1;
            got.extend(page.items.into_iter().map(|d| d.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3, "sort {sort}");
        assert_eq!(
            got,
            want.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            "sort {sort}"
        );
    }
    // A page size that divides the count exactly ends without an empty page.
    let q = DocumentQuery::new(None, None, None, Some(7), None, false, &Limits::default()).unwrap();
    let page = s.list_documents(&ME, &w.id, &q).await.unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (7, None));
    // Workspaces page the same way.
    for i in 0..4 {
        s.create_workspace(&ME, ws(&format!("Extra {i}")))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = WorkspaceQuery::new(
            None,
            Some("-name"),
            Some(2),
            cursor.as_deref(),
            false,
            &Limits::default(),
        )
        .unwrap();
        let page = s.list_workspaces(&ME, &q).await.unwrap();
        names.extend(page.items.into_iter().map(|w| w.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(names, ["Pages", "Extra 3", "Extra 2", "Extra 1", "Extra 0"]);
}

async fn filters_by_kind_and_title(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("F")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Checkout Redesign"))
        .await
        .unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "100% uptime plan"))
        .await
        .unwrap();
    s.create_document(
        &ME,
        &w.id,
        doc(DocumentKind::Moodboard, "Checkout moodboard"),
    )
    .await
    .unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::BoardConfig, "Rock 5B"))
        .await
        .unwrap();
    let titles = |kind: Option<&str>, q: Option<&str>| {
        let query = DocumentQuery::new(
            kind,
            q.map(Into::into),
            Some("title"),
            None,
            None,
            false,
            &Limits::default(),
        )
        .unwrap();
        let s = s.clone();
        let w = w.id.clone();
        async move {
            s.list_documents(&ME, &w, &query)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|d| d.title)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        titles(Some("prd"), None).await,
        ["100% uptime plan", "Checkout Redesign"]
    );
    assert_eq!(
        titles(None, Some("CHECKOUT")).await,
        ["Checkout Redesign", "Checkout moodboard"]
    );
    assert_eq!(
        titles(Some("moodboard"), Some("checkout")).await,
        ["Checkout moodboard"]
    );
    // LIKE wildcards in the search text are literal.
    assert_eq!(titles(None, Some("0%")).await, ["100% uptime plan"]);
    assert!(titles(None, Some("_")).await.is_empty());
    assert!(titles(Some("board-config"), Some("pi")).await.is_empty());
    let found = s.list_workspaces(&ME, &wq(Some("f"), false)).await.unwrap();
    assert_eq!(found.items.len(), 1);
}

async fn deleted_workspace_hides_its_documents(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Gone")).await.unwrap();
    let d = s
        .create_document(&ME, &w.id, doc(DocumentKind::Moodboard, "Loft"))
        .await
        .unwrap();
    s.delete_workspace(&ME, &w.id, None).await.unwrap();
    assert!(matches!(
        s.get_document(&ME, &d.id, false).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.get_document(&ME, &d.id, true).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "x"))
            .await,
        Err(Error::NotFound { .. })
    ));
    let q = DocumentQuery::new(None, None, None, None, None, false, &Limits::default()).unwrap();
    assert!(matches!(
        s.list_documents(&ME, &w.id, &q).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete_document(&ME, &d.id, None).await,
        Err(Error::NotFound { .. })
    ));
    s.restore_workspace(&ME, &w.id).await.unwrap();
    assert_eq!(s.get_document(&ME, &d.id, false).await.unwrap().id, d.id);
}

async fn count_limits_hold(b: Backend) {
    let limits = Limits {
        max_workspaces: 2,
        max_documents_per_workspace: 2,
        ..Limits::default()
    };
    let t = b
        .open(StoreOptions {
            limits,
            ..Default::default()
        })
        .await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("One")).await.unwrap();
    let w2 = s.create_workspace(&ME, ws("Two")).await.unwrap();
    assert!(
        matches!(s.create_workspace(&ME, ws("Three")).await, Err(Error::LimitExceeded(m)) if m.contains("max_workspaces"))
    );
    let first = s
        .create_document(&ME, &w.id, doc(DocumentKind::Prd, "a"))
        .await
        .unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "b"))
        .await
        .unwrap();
    // Deleted documents still count until purged.
    s.delete_document(&ME, &first.id, None).await.unwrap();
    let over = s
        .create_document(&ME, &w.id, doc(DocumentKind::Prd, "c"))
        .await;
    assert!(
        matches!(over, Err(Error::LimitExceeded(m)) if m.contains("max_documents_per_workspace"))
    );
    assert_eq!(
        s.get_workspace(&ME, &w.id, false)
            .await
            .unwrap()
            .document_count,
        2
    );
    // The limit is per workspace.
    s.create_document(&ME, &w2.id, doc(DocumentKind::Prd, "c"))
        .await
        .unwrap();
}

async fn every_change_writes_one_event_in_order(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let mut signal = s.event_signal();
    let start = s.last_event_id().await.unwrap();
    let w = s.create_workspace(&ME, ws("Events")).await.unwrap();
    assert!(signal.has_changed().unwrap(), "a commit ticks the signal");
    signal.mark_unchanged();
    let other = s.create_workspace(&ME, ws("Other")).await.unwrap();
    let p = s
        .create_document(&ME, &w.id, doc(DocumentKind::Prd, "Spec"))
        .await
        .unwrap();
    let m = s
        .create_document(&ME, &other.id, doc(DocumentKind::Moodboard, "Mood"))
        .await
        .unwrap();
    s.update_document(
        &ME,
        &p.id,
        DocumentPatch {
            title: Some("Spec 2".into()),
            metadata: None,
        },
        None,
    )
    .await
    .unwrap();
    s.delete_document(&ME, &p.id, None).await.unwrap();
    s.restore_document(&ME, &p.id).await.unwrap();
    s.update_workspace(
        &ME,
        &w.id,
        WorkspacePatch {
            name: Some("Events!".into()),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    s.delete_workspace(&ME, &other.id, None).await.unwrap();

    let all = s
        .events_after(&ME, start, &EventFilter::default(), 100)
        .await
        .unwrap();
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "workspace.created",
            "workspace.created",
            "prd.created",
            "moodboard.created",
            "prd.updated",
            "prd.deleted",
            "prd.restored",
            "workspace.updated",
            "workspace.deleted"
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert_eq!(s.last_event_id().await.unwrap(), all.last().unwrap().id);
    assert_eq!(all[2].document_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(all[2].workspace_id.as_deref(), Some(w.id.as_str()));
    assert_eq!(all[2].actor, "anonymous");
    assert_eq!(all[2].data["document"]["title"], "Spec");
    assert_eq!(all[4].data["changes"], json!(["title"]));
    assert_eq!(all[3].data["document"]["id"], json!(m.id));

    // Resuming after an id returns exactly what followed it.
    let tail = s
        .events_after(&ME, all[5].id, &EventFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[6..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let limited = s
        .events_after(&ME, start, &EventFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);

    let by_ws = EventFilter {
        workspace_id: Some(other.id.clone()),
        names: vec![],
    };
    let names: Vec<_> = s
        .events_after(&ME, start, &by_ws, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "workspace.created",
            "moodboard.created",
            "workspace.deleted"
        ]
    );
    let by_name = EventFilter {
        workspace_id: None,
        names: vec!["prd.*".into(), "workspace.deleted".into()],
    };
    let names: Vec<_> = s
        .events_after(&ME, start, &by_name, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "prd.created",
            "prd.updated",
            "prd.deleted",
            "prd.restored",
            "workspace.deleted"
        ]
    );
}

async fn concurrent_updates_all_land(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Race")).await.unwrap();
    let d = s
        .create_document(&ME, &w.id, doc(DocumentKind::Prd, "Shared"))
        .await
        .unwrap();
    let writers = 12;
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let s = s.clone();
            let id = d.id.clone();
            tokio::spawn(async move {
                let patch = DocumentPatch {
                    title: None,
                    metadata: Some(json!({ format!("k{i}"): i })),
                };
                s.update_document(&ME, &id, patch, None).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let end = s.get_document(&ME, &d.id, false).await.unwrap();
    assert_eq!(end.revision, 1 + writers);
    let keys: HashSet<_> = end.metadata.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), writers as usize, "no merge was lost: {keys:?}");
    // Concurrent creations keep the document count exact.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let ws = w.id.clone();
            tokio::spawn(async move {
                s.create_document(&ME, &ws, doc(DocumentKind::Prd, &format!("d{i}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        s.get_workspace(&ME, &w.id, false)
            .await
            .unwrap()
            .document_count,
        9
    );
}

async fn failed_writes_leave_no_event(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s
        .create_workspace(
            &ME,
            NewWorkspace {
                name: "A".into(),
                slug: Some("taken".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    let before = s.last_event_id().await.unwrap();
    assert!(
        s.create_workspace(
            &ME,
            NewWorkspace {
                name: "B".into(),
                slug: Some("taken".into()),
                description: None
            }
        )
        .await
        .is_err()
    );
    assert!(
        s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "  "))
            .await
            .is_err()
    );
    assert!(
        s.update_workspace(
            &ME,
            &w.id,
            WorkspacePatch {
                name: Some("x".into()),
                ..Default::default()
            },
            Some(9)
        )
        .await
        .is_err()
    );
    assert_eq!(s.last_event_id().await.unwrap(), before);
    assert_eq!(
        s.list_workspaces(&ME, &wq(None, false))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn migrations_are_idempotent(b: Backend) {
    let t = open(b).await;
    t.store.migrate().await.unwrap();
    t.store.ping().await.unwrap();
    // A second process opening the same database sees the same data.
    let w = t.store.create_workspace(&ME, ws("Shared")).await.unwrap();
    let again = quire_store::connect(&t.url, StoreOptions::default())
        .await
        .unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.get_workspace(&ME, &w.id, false).await.unwrap(), w);
    assert_eq!(again.backend(), t.store.backend());
}

async fn a_tail_follows_the_outbox_live(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Tail")).await.unwrap();
    let start = s.last_event_id().await.unwrap();
    // Polling every minute: only the commit signal can deliver within the timeout below.
    let poll = std::time::Duration::from_secs(60);
    let filter = EventFilter {
        workspace_id: None,
        names: vec!["prd.*".into()],
    };
    let mut tail = quire_store::EventTail::new(s.clone(), ME, start, filter, poll);
    let reader = tokio::spawn(async move {
        let mut names = Vec::new();
        for _ in 0..3 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next())
                .await
                .expect("woken by the commit");
            names.push((event.id, event.name));
        }
        (names, tail.position())
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let d = s
        .create_document(&ME, &w.id, doc(DocumentKind::Prd, "One"))
        .await
        .unwrap();
    s.create_document(
        &ME,
        &w.id,
        doc(DocumentKind::Moodboard, "Skipped by the filter"),
    )
    .await
    .unwrap();
    s.update_document(
        &ME,
        &d.id,
        DocumentPatch {
            title: Some("Two".into()),
            metadata: None,
        },
        None,
    )
    .await
    .unwrap();
    s.delete_document(&ME, &d.id, None).await.unwrap();
    let (events, position) = reader.await.unwrap();
    let names: Vec<_> = events.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["prd.created", "prd.updated", "prd.deleted"]);
    assert_eq!(position, events[2].0);
}

async fn consumer_offsets_only_move_forward(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 0);
    s.save_consumer_offset("indexer", 7).await.unwrap();
    s.save_consumer_offset("notifier", 3).await.unwrap();
    s.save_consumer_offset("indexer", 5).await.unwrap();
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 7);
    s.save_consumer_offset("indexer", 9).await.unwrap();
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 9);
    assert_eq!(s.consumer_offset("notifier").await.unwrap(), 3);
}
