import { Component, type ReactNode } from 'react';

/** Whatever breaks while rendering, the person sees what happened and a way on. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (this.state.error) {
      return (
        <main className="center-page">
          <div className="card narrow" role="alert">
            <h1>Something went wrong</h1>
            <p>This page stopped working: {this.state.error.message}</p>
            <p className="muted">Nothing you saved is lost. Reload the page to carry on.</p>
            <button className="primary" onClick={() => window.location.reload()}>
              Reload
            </button>
          </div>
        </main>
      );
    }
    return this.props.children;
  }
}
